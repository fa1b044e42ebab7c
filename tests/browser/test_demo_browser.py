"""The widget demo in a real browser: notebook 09 run in JupyterLab, driven from headless Chromium.

The steps a student takes: open the notebook, wait for the kernel, Run → Run All Cells, type a
sentence into the NER widget and a question into the QA widget. The rendered page must then show
the entity and the answer as ``<mark>`` elements inside the widgets' outputs (the CSS classes of
``nerqa_helpers.widgets``). The screenshot is saved as ``docs/demo.png`` for the README.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")  # the `browser` fixture skips without Chromium
expect = sync_api.expect

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

NOTEBOOK = "notebooks/09_interactive_demo.ipynb"
SCREENSHOT = REPOSITORY_ROOT / "docs" / "demo.png"
SCREENSHOT_MAX_BYTES = 500_000
SCREENSHOT_VIEWPORT = {"width": 1280, "height": 1700}  # room for both widgets at once
RUN_ALL_SECONDS = 300  # the notebook loads a saved model; a slow shared CPU may still need minutes

# Names from the tiny sample (its test split), which even the tiny model tags; the check is of the
# page, not of the model's accuracy.
SENTENCE = "Elena Petrova won the chess final in Kyoto on a rainy Sunday."
ENTITY_WORD = "Petrova"
SENTENCE_MARKER = "rainy Sunday"  # plain text: shows the output belongs to this sentence
CONTEXT = ("The Saltmarsh Rowing Club was founded in Harwick in 1887. Its first captain, Tobias Wren, "
           "built the boathouse that still stands on the river bank.")
QUESTION = "When was the Saltmarsh Rowing Club founded?"
CONTEXT_MARKER = "boathouse that still stands"


def run_all_cells(page) -> None:
    """Wait for the kernel to be idle (Run All before that does nothing), then Run → Run All Cells."""
    status = page.locator("#jp-main-statusbar")
    expect(status).to_contain_text(re.compile(r"Python 3 \(ipykernel\)\s*\|\s*Idle"), timeout=120_000)
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def notebook_errors(page) -> str:
    """The text of any error output in the notebook (to explain a timeout)."""
    errors = page.locator('.jp-OutputArea-output [data-mime-type="application/vnd.jupyter.stderr"], '
                          '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return "\n".join(errors.all_text_contents())[-3000:] or "(none shown)"


def wait_for_widgets(page, lab) -> None:
    """Both widgets rendered with their first result (the notebook's own example)."""
    try:
        for selector in (".nerqa-ner-output .nerqa-ner-result", ".nerqa-qa-output .nerqa-qa-result"):
            page.locator(selector).first.wait_for(state="attached", timeout=RUN_ALL_SECONDS * 1000)
    except sync_api.TimeoutError as error:
        raise AssertionError(f"the widgets did not render.\nNotebook errors:\n{notebook_errors(page)}\n"
                             f"JupyterLab log:\n{lab.log_tail()}") from error


def ask_for_entities(page, sentence: str) -> None:
    """Type ``sentence`` into the NER widget and press its button."""
    page.locator(".nerqa-ner-input textarea").first.fill(sentence)
    page.locator("button.nerqa-ner-button").first.click()


def ask_question(page, question: str, context: str) -> None:
    """Type ``context`` and ``question`` into the QA widget and press its button."""
    page.locator(".nerqa-qa-context textarea").first.fill(context)
    page.locator(".nerqa-qa-question input").first.fill(question)
    page.locator("button.nerqa-qa-button").first.click()


def save_screenshot(page, path: Path) -> None:
    """Both widgets and their results, from the sentence box to the answers table, as one PNG.

    The file browser is folded away and the window made tall enough for the cells between the two
    widgets; the picture is clipped to the notebook, under ``SCREENSHOT_MAX_BYTES``.
    """
    page.set_viewport_size(SCREENSHOT_VIEWPORT)
    file_browser_tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]')
    if file_browser_tab.get_attribute("aria-selected") == "true":
        file_browser_tab.click()  # the open tab folds the side panel away
    first = page.locator(".nerqa-ner-input").first
    first.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)  # let the layout and the scroll settle before the picture
    panel = page.locator(".jp-NotebookPanel-notebook").first.bounding_box()
    top = max(first.bounding_box()["y"] - 12, panel["y"])
    bottom = min(page.locator(".nerqa-qa-output").first.bounding_box()["y"]
                 + page.locator(".nerqa-qa-output").first.bounding_box()["height"] + 12,
                 panel["y"] + panel["height"])
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), clip={"x": panel["x"], "y": top, "width": panel["width"], "height": bottom - top})
    assert path.stat().st_size < SCREENSHOT_MAX_BYTES, f"{path} is {path.stat().st_size} bytes"


def test_demo_notebook_highlights_entities_and_answers_in_the_browser(page, jupyter_lab):
    notebook = REPOSITORY_ROOT / NOTEBOOK
    assert notebook.is_file(), f"{NOTEBOOK} is missing"
    committed = notebook.read_bytes()
    page.goto(jupyter_lab.url(f"lab/tree/{NOTEBOOK}"))
    run_all_cells(page)
    wait_for_widgets(page, jupyter_lab)

    ask_for_entities(page, SENTENCE)
    ner_output = page.locator(".nerqa-ner-output").first
    expect(ner_output.locator(".nerqa-ner-result")).to_contain_text(SENTENCE_MARKER, timeout=60_000)
    expect(ner_output.locator("mark.nerqa-entity", has_text=ENTITY_WORD).first).to_be_visible()

    ask_question(page, QUESTION, CONTEXT)
    qa_output = page.locator(".nerqa-qa-output").first
    expect(qa_output.locator(".nerqa-qa-result")).to_contain_text(CONTEXT_MARKER, timeout=60_000)
    answer = qa_output.locator("mark.nerqa-answer")
    expect(answer).to_have_count(1)
    expect(answer).to_be_visible()
    answer_text = answer.inner_text().strip()
    assert answer_text and answer_text in CONTEXT, f"the highlighted answer {answer_text!r} is not in the context"
    expect(qa_output.locator("table.nerqa-answers-table")).to_contain_text(answer_text)

    save_screenshot(page, SCREENSHOT)
    assert notebook.read_bytes() == committed, "JupyterLab saved the notebook (autosave must be off)"
