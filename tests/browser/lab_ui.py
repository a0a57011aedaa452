"""What a user does in JupyterLab 4, as Playwright steps: launcher, menus, cells, file browser.

Menu items are clicked through their menus and found by the command they run
(``data-command``), which does not change with the label's wording or language. A cell is done
when its prompt shows its execution count (``[3]:``), which JupyterLab sets when the kernel
replies, after every output of that cell has arrived.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from urllib.parse import parse_qsl

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CELL_TIMEOUT_MS = 120_000  # the first cell after a restore waits for the restore
UI_TIMEOUT_MS = 30_000
MENUS = {
    "docmanager:rename": "File",
    "application:close": "File",
    "kernelmenu:restart": "Kernel",
    "kernelmenu:shutdown": "Kernel",
}

# Installed before any page script runs: keeps the text of every dialog, notification (toast)
# and cell output the page shows, even one that closes by itself a few seconds later.
WATCH_PAGE = r"""
window.__shown = [];
new MutationObserver((mutations) => {
  for (const mutation of mutations) {
    for (const node of mutation.addedNodes) {
      const element = node.nodeType === 1 ? node : node.parentElement;
      const box = element && element.closest(
        '.jp-Dialog, .Toastify__toast, .jp-Notification-Toast, .jp-OutputArea-output');
      if (box) window.__shown.push(box.innerText || box.textContent || '');
    }
  }
}).observe(document, {childList: true, subtree: true, characterData: true});

// Every API request JupyterLab sends, with the user's step at the moment it was sent.
window.__step = 'open JupyterLab';
window.__requests = [];
const sendRequest = window.fetch;
window.fetch = async (input, init) => {
  const request = new Request(input, init);
  const url = new URL(request.url);
  const entry = {step: window.__step, method: request.method, path: url.pathname,
                 query: url.search, body: null, status: null};
  if (/^\/api\/(sessions|contents|kernels\/)/.test(url.pathname)) {
    window.__requests.push(entry);
    if (!['GET', 'HEAD'].includes(request.method)) entry.body = await request.clone().text();
  }
  const response = await sendRequest(request);
  entry.status = response.status;
  return response;
};
"""


class Lab:
    """The JupyterLab page of one test, and what a user does with it."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        page.add_init_script(WATCH_PAGE)
        page.set_default_timeout(UI_TIMEOUT_MS)

    def _step(self, name: str) -> None:
        """Label the requests the page sends from now on with what the user does."""
        self.page.evaluate("(name) => { window.__step = name; }", name)

    def requests(self) -> list[dict]:
        """Every request the page sent to /api/sessions, /api/contents and /api/kernels/…:
        step, method, path, query (without the cache-busting timestamp), JSON body, status."""
        sent = self.page.evaluate("window.__requests")
        for request in sent:
            query = parse_qsl(request["query"].lstrip("?"), keep_blank_values=True)
            request["query"] = {k: v for k, v in query if not k.isdigit()}
            request["body"] = json.loads(request["body"]) if request["body"] else None
        return sent

    # -- the page -------------------------------------------------------------------------------

    def open(self) -> None:
        self.page.goto(self.url)
        self.page.locator(".jp-LauncherCard").first.wait_for()

    def shown(self) -> str:
        """Every dialog, notification and output text the page has shown, and what it shows."""
        seen = self.page.evaluate("window.__shown || []")
        return "\n".join([*seen, self.page.locator("body").inner_text()])

    def wait_until_shown(self, pattern: str, timeout: float = 60.0) -> str:
        """The first text the page showed that matches ``pattern`` (a regular expression)."""
        found = self.page.wait_for_function(
            """([pattern]) => {
              const texts = [...(window.__shown || []), document.body.innerText];
              const regex = new RegExp(pattern, 'i');
              return texts.find((text) => regex.test(text)) || null;
            }""",
            arg=[pattern],
            timeout=timeout * 1000,
        )
        return found.json_value()

    def file_changed_dialogs(self) -> list[str]:
        """Every "File Changed" dialog the page has shown (JupyterLab asks to overwrite or
        revert when the file on disk is newer than the document)."""
        return [
            text for text in self.page.evaluate("window.__shown || []") if "File Changed" in text
        ]

    def menu(self, command: str) -> None:
        """Open the main menu that holds ``command`` and click it."""
        self.page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=MENUS[command]).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()

    def accept_dialog(self, title: str) -> None:
        dialog = self.page.locator(".jp-Dialog", has_text=title)
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        expect(dialog).to_have_count(0)

    # -- notebooks ------------------------------------------------------------------------------

    def new_notebook(self) -> None:
        """Click the launcher's Python 3 notebook card; wait for the new notebook's kernel."""
        self._step("new notebook")
        self.page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
        self.wait_until_loaded()

    def notebook(self):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    def current_tab(self):
        return self.page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current")

    def wait_until_loaded(self) -> None:
        """The notebook's cells are in (its spinner is gone: cells typed into before that are
        overwritten when the file's content arrives), its session exists and its kernel is idle.

        The session is waited for by its request (for up to 30 s: JupyterLab may reuse one):
        the kernel indicator can read Idle before there is a kernel, and a cell run then is
        silently not run.
        """
        expect(self.notebook().locator(".jp-Spinner")).to_have_count(0)
        self.notebook().locator(".jp-Cell").first.wait_for()
        with suppress(PlaywrightTimeoutError):
            self.wait_for_answer("POST", "/api/sessions", timeout_ms=30_000)
        self.wait_for_kernel_idle()

    def wait_for_answer(self, method: str, path: str, timeout_ms: float = CELL_TIMEOUT_MS) -> None:
        """Wait until the server answered a ``method`` request to ``path`` sent in this step."""
        self.page.wait_for_function(
            """([method, path]) => window.__requests.some((r) => r.step === window.__step
                 && r.method === method && r.path === path && r.status !== null)""",
            arg=[method, path],
            timeout=timeout_ms,
        )

    def wait_for_kernel_idle(self) -> None:
        """The notebook toolbar's kernel status reads Idle."""
        status = self.notebook().locator(".jp-Notebook-ExecutionIndicator")
        expect(status).to_have_attribute("data-status", "idle", timeout=CELL_TIMEOUT_MS)

    def rename(self, name: str) -> None:
        """File > Rename Notebook…, type ``name``, Rename."""
        self._step("rename")
        self.menu("docmanager:rename")
        dialog = self.page.locator(".jp-Dialog")
        field = dialog.locator("input")
        field.fill(name)
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        expect(dialog).to_have_count(0)
        expect(self.current_tab()).to_contain_text(name)

    def run_cell(self, code: str) -> str:
        """Type ``code`` into a new cell at the end, Shift+Enter, and return its output text
        once its execution count shows."""
        self._step("run cell")
        cells = self.notebook().locator(".jp-Cell")
        count = cells.count()
        editor = cells.nth(count - 1).locator(".cm-content")
        if editor.inner_text().strip():
            editor.click()
            self.notebook().locator(".jp-NotebookPanel-toolbar").locator(
                '[data-command="notebook:insert-cell-below"]'
            ).click()
            count += 1
            expect(cells).to_have_count(count)
        cell = cells.nth(count - 1)
        editor = cell.locator(".cm-content")
        editor.click()
        self.page.keyboard.insert_text(code)
        expect(editor).to_have_text(code.replace("\n", ""))
        self._execute(cell)
        outputs = cell.locator(".jp-OutputArea-output")
        return "\n".join(outputs.all_inner_texts())

    def _execute(self, cell) -> None:
        """Shift+Enter in ``cell``, then wait for its execution count.

        Under load, JupyterLab sometimes drops a Shift+Enter pressed just after a notebook was
        opened or renamed (the prompt stays ``[ ]`` and nothing reaches the kernel); a user
        presses it again, and so does this. A cell that started (``[*]``) and ended without a
        count was aborted or lost by the kernel: that is reported, never retried.
        """
        prompt = cell.locator(".jp-InputPrompt")
        for attempt in range(2):
            # focused again: a dialog that just closed may have moved the focus
            cell.locator(".cm-content").press("Shift+Enter")
            try:
                expect(prompt).not_to_have_text("[ ]:", timeout=10_000)
                break
            except AssertionError:
                if attempt:
                    raise AssertionError("JupyterLab ran nothing on Shift+Enter, twice") from None
        expect(prompt).not_to_have_text("[*]:", timeout=CELL_TIMEOUT_MS)
        if not re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
            raise AssertionError(
                f"the cell stopped without an execution count ({prompt.inner_text()}): "
                "the kernel aborted it, restarted or died"
            )

    def save(self) -> None:
        """Ctrl+S; wait until the tab is no longer marked as modified (or a dialog opened)."""
        self._step("save")
        self.notebook().locator(".jp-Notebook").click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Control+s")
        done = self.page.locator(
            "#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty), .jp-Dialog"
        )
        done.first.wait_for()
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"Ctrl+S opened a dialog: {' '.join(dialog.inner_text().split())}")

    def shut_down_kernel(self) -> None:
        """Kernel > Shut Down Kernel; wait until the notebook says it has no kernel."""
        self._step("shut down kernel")
        self.menu("kernelmenu:shutdown")
        status = self.notebook().locator(".jp-Notebook-ExecutionIndicator")
        expect(status).not_to_have_attribute("data-status", "idle")
        # JupyterLab forgets the session only when it next lists the running ones: a notebook
        # reopened before that reconnects to the kernel just shut down, and never gets one.
        self.page.wait_for_function(
            """() => {
              const sent = window.__requests;
              const gone = sent.findIndex((r) => r.step === window.__step
                && r.method === 'DELETE' && r.path.startsWith('/api/sessions/') && r.status);
              return gone >= 0 && sent.slice(gone + 1).some((r) => r.method === 'GET'
                && r.path === '/api/sessions' && r.status);
            }""",
            timeout=CELL_TIMEOUT_MS,
        )

    def restart_kernel(self) -> None:
        """Kernel > Restart Kernel…, Restart; wait for the new kernel."""
        self._step("restart kernel")
        self.menu("kernelmenu:restart")
        self.accept_dialog("Restart")
        self.page.wait_for_function(
            """() => window.__requests.some((r) => r.step === window.__step
                 && r.path.endsWith('/restart') && r.status !== null)""",
            timeout=CELL_TIMEOUT_MS,
        )
        self.wait_for_kernel_idle()

    def close_tab(self) -> None:
        """File > Close Tab."""
        self._step("close tab")
        name = self.current_tab().locator(".lm-TabBar-tabLabel").inner_text()
        self.menu("application:close")
        tab = self.page.locator("#jp-main-dock-panel .lm-TabBar-tabLabel", has_text=name)
        expect(tab).to_have_count(0)

    # -- the file browser -----------------------------------------------------------------------

    def open_from_file_browser(self, path: str) -> None:
        """Double-click through the file browser's folders to ``path`` (from the root), then
        on the notebook; wait for its kernel."""
        self._step("open from file browser")
        browser = self.page.locator("#filebrowser")
        if not browser.is_visible():
            self.page.locator('.lm-TabBar-tab[data-id="filebrowser"]').click()
        browser.locator(".jp-BreadCrumbs-home").click()
        for part in path.split("/"):
            self.refresh_file_browser()
            item = self.file_browser_item(part)
            item.dblclick()
        expect(self.current_tab()).to_contain_text(path.rsplit("/", 1)[-1])
        self.wait_until_loaded()

    def refresh_file_browser(self) -> None:
        self.page.locator('#filebrowser jp-button[data-command="filebrowser:refresh"]').click()

    def file_browser_item(self, name: str):
        return self.page.locator(
            "#filebrowser .jp-DirListing-item", has=self.page.locator(f'text="{name}"')
        )

    def file_browser_names(self) -> list[str]:
        """The names the file browser lists in the folder it shows, after a refresh."""
        self.refresh_file_browser()
        self.page.wait_for_timeout(500)
        return self.page.locator("#filebrowser .jp-DirListing-itemText").all_inner_texts()
