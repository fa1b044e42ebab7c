"""The lab bench in a real browser: notebook 09 run in JupyterLab, driven from headless Chromium.

The steps a student takes: open the notebook, wait for the kernel, Run → Run All Cells, then use
the widgets: type a sentence into the NER widget and a question into the QA widget, ask the span
map about a long paragraph, switch the example browser between NER and QA, compare saved models.
The rendered page must show the results inside the widgets' outputs (the CSS classes of
``nerqa_helpers.widgets`` and ``nerqa_helpers.demo_views``). One screenshot per widget is saved
as ``docs/demo-<widget>.png`` (and both first widgets together as ``docs/demo.png``) for the README.
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
    """The widgets rendered with their first result (the notebook's own examples), down to the last one."""
    try:
        for selector in (".nerqa-ner-output .nerqa-ner-result", ".nerqa-qa-output .nerqa-qa-result",
                     ".nerqa-span-output .nerqa-span-map", ".nerqa-example-output .nerqa-example-result",
                     ".nerqa-history-output .nerqa-note"):
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


# -- the lab bench widgets -------------------------------------------------------------------------
WIDGET_MARKERS = {  # docs/demo-<name>.png: the cell output that holds this widget part
    "ner": ".nerqa-ner-output", "qa": ".nerqa-qa-output", "subwords": ".nerqa-subword-output",
    "span-map": ".nerqa-span-output", "examples": ".nerqa-example-output", "models": ".nerqa-switcher-output",
    "task-mix": ".nerqa-mix-output", "history": ".nerqa-history-output",
}


def widget_area(page, marker: str):
    """The cell output (the whole widget) that holds the element ``marker``."""
    return page.locator(f".jp-OutputArea-output:has({marker})").first


def save_widget_screenshots(page, folder: Path) -> list[Path]:
    """One PNG per widget (``WIDGET_MARKERS``), each under ``SCREENSHOT_MAX_BYTES``."""
    saved = []
    for name, marker in WIDGET_MARKERS.items():
        area = widget_area(page, marker)
        height = area.evaluate("element => element.getBoundingClientRect().height")
        page.set_viewport_size({"width": 1100, "height": int(max(900, height + 300))})  # all of it on screen
        area.evaluate("element => element.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(300)
        path = folder / f"demo-{name}.png"
        area.screenshot(path=str(path))
        assert path.stat().st_size < SCREENSHOT_MAX_BYTES, f"{path} is {path.stat().st_size} bytes"
        saved.append(path)
    return saved


def check_span_map(page) -> None:
    """The notebook's long paragraph gives several windows, some tokens shared, one chosen span;
    the button redraws the map."""
    output = page.locator(".nerqa-span-output").first
    expect(output.locator(".nerqa-span-map")).to_be_attached()
    windows = output.locator(".nerqa-window").count()
    assert windows >= 2, f"the long context should take several windows, got {windows}"
    assert output.locator(".nerqa-token.nerqa-overlap").count() > 0, "no token marked as shared by two windows"
    expect(output.locator(".nerqa-span-best").first).to_be_visible()
    expect(output.locator("tr.nerqa-span-answer").first).to_be_visible()
    question = page.locator(".nerqa-span-question input").first
    asked = question.input_value()  # the notebook's question about its long paragraph: ask it again
    question.fill("")
    question.fill(asked)
    page.locator("button.nerqa-span-button").first.click()
    expect(output.locator(".nerqa-window")).to_have_count(windows, timeout=60_000)
    expect(output.locator(".nerqa-span-answers")).to_be_visible()


def check_example_browser(page) -> None:
    """NER: gold and predicted side by side with the errors named; next example; QA: EM and F1."""
    output = page.locator(".nerqa-example-output").first
    task = page.locator(".nerqa-example-task select").first
    task.select_option(label="NER sentence")
    expect(output.locator('.nerqa-example-result[data-task="ner"]')).to_be_attached(timeout=60_000)
    expect(output.locator(".nerqa-gold .nerqa-ner-result")).to_be_visible()
    expect(output.locator(".nerqa-predicted .nerqa-ner-result")).to_be_visible()
    expect(output.locator("table.nerqa-errors")).to_be_visible()
    first = output.inner_text()
    page.locator("button.nerqa-example-next").first.click()
    expect(output).not_to_have_text(first, timeout=60_000)
    task.select_option(label="QA question")
    scores = output.locator(".nerqa-qa-scores")
    expect(scores).to_contain_text(re.compile(r"EM \d+ · F1 \d+\.\d"), timeout=120_000)


def check_model_switcher(page) -> None:
    """Compare the chosen saved models: one column per model, with scores."""
    page.locator("button.nerqa-switcher-button").first.click()
    table = page.locator(".nerqa-switcher-output table.nerqa-comparison").first
    expect(table).to_be_visible(timeout=120_000)
    assert table.locator("th[data-run]").count() >= 1


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

    check_span_map(page)
    check_example_browser(page)
    check_model_switcher(page)
    for marker in (".nerqa-subword-output .nerqa-pieces", ".nerqa-mix-output .nerqa-mix-row",
                   ".nerqa-mix-figure img", ".nerqa-history-figure img"):
        expect(page.locator(marker).first).to_be_attached()
    save_widget_screenshots(page, SCREENSHOT.parent)
    assert notebook.read_bytes() == committed, "JupyterLab saved the notebook (autosave must be off)"
