"""What the lab bench shows: plain data in (predictions, ``demo`` and ``demo_runs`` results), HTML or a Figure out.

    highlight_entities_html(text, entities)   entities as <mark> elements, coloured by type
    highlight_answer_html(context, answer)     the answer span as a <mark> inside the paragraph
    answers_table(answers)                     the top-k answers and their scores, best first
    subword_html(view)                         pieces, the -100 labels, and P(tag | word) as a heat table
    span_map_html(span_map)                    per window: P(start) / P(end) heat strips, overlaps, answers
    ner_example_html / qa_example_html         gold against predicted, errors named, EM / F1
    comparison_html(outputs)                   several models' answers side by side with their scores
    task_mix_html, loss_figure                 bars of a task mix; loss curves and task weights of runs

Everything from the input is HTML-escaped. Stable CSS classes (``nerqa-entity``, ``nerqa-answer``,
``nerqa-window``, ``nerqa-token``, ``nerqa-error-kind``, ...) let a browser test find the parts.
"""
from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

import pandas as pd

from .inference import iob2_spans, join_words
from .sampling import task_probabilities

ENTITY_COLOURS = {"PER": "#ffd6a5", "ORG": "#bde0fe", "LOC": "#caffbf", "MISC": "#e4c1f9"}
OTHER_COLOUR = "#e0e0e0"
ANSWER_COLOUR = "#fff3a3"
TASK_COLOURS = {"ner": "#1f77b4", "qa": "#ff7f0e"}
MARK_STYLE = "padding:0.1em 0.3em;margin:0 0.1em;border-radius:0.3em;line-height:2"
LABEL_STYLE = "font-size:0.7em;font-weight:bold;margin-left:0.3em;vertical-align:middle"
START_RGB, END_RGB = "31,119,180", "214,39,40"  # P(start) blue, P(end) red
ERROR_COLOURS = {"correct": "#2e7d32", "missed": "#b00020", "spurious": "#e65100", "wrong type": "#6a1b9a",
                 "wrong boundary": "#1565c0"}
TABLE_STYLE = "border-collapse:collapse;font-size:0.85em;margin:0.3em 0"
CELL_STYLE = "border:1px solid #ddd;padding:2px 6px;text-align:center"


def _checked_spans(text: str, items: Sequence[Mapping], kind: str) -> list[Mapping]:
    """``items`` sorted by start; ValueError when a span leaves the text or two spans overlap."""
    ordered = sorted(items, key=lambda item: (int(item["start"]), int(item["end"])))
    previous_end = 0
    for item in ordered:
        start, end = int(item["start"]), int(item["end"])
        if not 0 <= start <= end <= len(text):
            raise ValueError(f"{kind} span ({start}, {end}) lies outside the text of length {len(text)}")
        if start < previous_end:
            raise ValueError(f"{kind} spans overlap at character {start}; give non-overlapping spans")
        previous_end = end
    return ordered


def entity_mark(text: str, entity_type: str, score: float | None = None) -> str:
    """One ``<mark>``: the (escaped) entity text, coloured by type, with the type as a label."""
    colour = ENTITY_COLOURS.get(entity_type, OTHER_COLOUR)
    kind = escape(entity_type, quote=True)
    title = f' title="{kind} {score:.2f}"' if score is not None else f' title="{kind}"'
    return (f'<mark class="nerqa-entity" data-entity="{kind}"{title} style="background:{colour};{MARK_STYLE}">'
            f'{escape(text)}<span class="nerqa-entity-label" style="{LABEL_STYLE}">{kind}</span></mark>')


def highlight_entities_html(text: str, entities: Sequence[Mapping]) -> str:
    """HTML of ``text`` with every entity as a coloured ``<mark data-entity="TYPE">``.

    ``entities``: dicts with ``start``, ``end`` (character offsets into ``text``), ``entity``
    (the type: PER, ORG, LOC, MISC, ...) and optionally ``score`` — what ``pipeline.ner(text)``
    returns. Everything from ``text`` is HTML-escaped; spans must not overlap. Returns one
    ``<div class="nerqa-ner-result">``; with no entities it says so below the text.
    """
    pieces, position = [], 0
    for entity in _checked_spans(text, entities, "Entity"):
        start, end = int(entity["start"]), int(entity["end"])
        pieces.append(escape(text[position:start]))
        pieces.append(entity_mark(text[start:end], str(entity["entity"]), entity.get("score")))
        position = end
    pieces.append(escape(text[position:]))
    note = "" if entities else '<div class="nerqa-note" style="color:#666">(no entities found)</div>'
    return f'<div class="nerqa-ner-result" style="line-height:2.2;white-space:pre-wrap">{"".join(pieces)}</div>{note}'


def entity_legend_html() -> str:
    """The colour of each entity type, as a key (plain spans, not marks)."""
    keys = "".join(f'<span style="background:{colour};{MARK_STYLE}">{kind}</span>'
                   for kind, colour in ENTITY_COLOURS.items())
    return f'<div class="nerqa-legend" style="font-size:0.85em">{keys}</div>'


def highlight_answer_html(context: str, answer: Mapping | None) -> str:
    """HTML of ``context`` with the answer span marked: ``<mark class="nerqa-answer">``.

    ``answer``: a dict with ``start`` and ``end`` (character offsets into ``context``) and
    optionally ``answer`` (its text, checked against ``context[start:end]``) and ``score``, as
    ``pipeline.qa`` returns it. An empty span (``start == end``, SQuAD v2's "no answer") or
    ``None`` marks nothing and says so. The context is HTML-escaped.
    """
    empty = answer is None or int(answer["start"]) == int(answer["end"])
    if not empty:
        start, end = int(answer["start"]), int(answer["end"])
        _checked_spans(context, [answer], "Answer")
        expected = answer.get("answer")
        if expected is not None and expected != context[start:end]:
            raise ValueError(f"The answer text {expected!r} is not context[{start}:{end}] = {context[start:end]!r}")
    if empty:
        body = escape(context) + '<div class="nerqa-note" style="color:#666">(no answer in this paragraph)</div>'
    else:
        score = answer.get("score")
        title = f' title="score {score:.3f}"' if score is not None else ""
        body = (f"{escape(context[:start])}<mark class=\"nerqa-answer\"{title} "
                f"style=\"background:{ANSWER_COLOUR};{MARK_STYLE}\">{escape(context[start:end])}</mark>"
                f"{escape(context[end:])}")
    return f'<div class="nerqa-qa-result" style="line-height:1.8;white-space:pre-wrap">{body}</div>'


def answers_table(answers: Mapping | Sequence[Mapping]) -> pd.DataFrame:
    """The candidate answers as a table, highest score first.

    ``answers``: one answer dict or a list of them (``answer``, ``score``, ``start``, ``end``), as
    ``pipeline.qa(..., top_k=k)`` returns. Columns: answer, score, start, end; index: rank 1, 2, ...
    """
    rows = [answers] if isinstance(answers, Mapping) else list(answers)
    table = pd.DataFrame(rows, columns=["answer", "score", "start", "end"])
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    table.index = pd.RangeIndex(1, len(table) + 1, name="rank")
    return table


def task_mix_for_temperature(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """The chance that a training step picks each task under temperature sampling.

    ``sizes``: task → number of training batches (or examples). Returns task → p with
    p_i = n_i^(1/T) / Σ_j n_j^(1/T): T = 1 follows the sizes, a large T approaches uniform and
    T < 1 favours the big task even more. The same formula as ``sampling.task_probabilities``.
    """
    return task_probabilities(dict(sizes), "temperature", float(temperature))


def task_mix_html(mix: Mapping[str, float], sizes: Mapping[str, int] | None = None) -> str:
    """Horizontal bars (plain HTML) for a task mix: one ``<div data-task>`` per task, width ∝ p."""
    rows = []
    for index, (task, share) in enumerate(mix.items()):
        colour = TASK_COLOURS.get(task, f"hsl({97 * index % 360},60%,55%)")
        size = f" ({sizes[task]:,} batches)" if sizes and task in sizes else ""
        rows.append(
            f'<div class="nerqa-mix-row" data-task="{escape(task, quote=True)}" data-share="{share:.6f}" '
            f'style="display:flex;align-items:center;margin:2px 0">'
            f'<span style="width:11em">{escape(task)}{escape(size)}</span>'
            f'<span style="display:inline-block;height:1.1em;width:{100 * share:.1f}%;max-width:60%;'
            f'background:{colour}"></span><span style="margin-left:0.5em">{100 * share:.1f}%</span></div>'
        )
    return f'<div class="nerqa-mix-result">{"".join(rows)}</div>'


def error_html(error: Exception) -> str:
    """An error message a student can read in place of a result."""
    return f'<div class="nerqa-error" style="color:#b00020">{escape(type(error).__name__)}: {escape(str(error))}</div>'



def _table(rows: Sequence[str], css_class: str) -> str:
    return f'<table class="{css_class}" style="{TABLE_STYLE}">{"".join(rows)}</table>'


def _cell(content: str, tag: str = "td", style: str = "", attributes: str = "") -> str:
    return f'<{tag}{attributes} style="{CELL_STYLE};{style}">{content}</{tag}>'


def _shade(probability: float, rgb: str) -> str:
    """Background of strength ``probability``; white text on the dark end."""
    ink = "color:white;" if probability > 0.6 else ""
    return f"{ink}background:rgba({rgb},{probability:.3f})"


# -- 1. sub-words ----------------------------------------------------------------------------------
def subword_html(view) -> str:
    """A ``demo.SubwordView`` as two tables: the pieces (rows piece / word / label: the piece that
    carries a word's label in bold, the others "-100" in grey) and P(tag | word), one row per word
    and one column per tag, shaded by probability, the chosen tag framed."""
    if not view.words:
        return '<div class="nerqa-subword-result"><div class="nerqa-note" style="color:#666">(no words)</div></div>'
    pieces, words, labels = [_cell("piece", "th")], [_cell("word", "th")], [_cell("label", "th")]
    for piece in view.pieces:
        pieces.append(_cell(escape(piece.token), attributes=' class="nerqa-piece"'))
        words.append(_cell("" if piece.word is None else str(piece.word), style="color:#666"))
        style = "color:#999" if piece.label == "-100" else "font-weight:bold"
        labels.append(_cell(escape(piece.label), style=style,
                            attributes=f' class="nerqa-piece-label" data-label="{escape(piece.label, quote=True)}"'))
    piece_table = _table([f"<tr>{''.join(row)}</tr>" for row in (pieces, words, labels)], "nerqa-pieces")
    header = "<tr>" + _cell("word", "th") + "".join(_cell(escape(name), "th") for name in view.label_names) + "</tr>"
    rows = [header]
    for index, (word, tag, probabilities) in enumerate(zip(view.words, view.tags, view.probabilities)):
        cells = "".join(_cell(f"{p:.2f}", style=_shade(p, START_RGB) + (";outline:2px solid black" if name == tag else ""),
                              attributes=f' data-tag="{escape(name, quote=True)}" data-probability="{p:.4f}"')
                        for name, p in zip(view.label_names, probabilities))
        rows.append(f'<tr data-word="{index}">{_cell(f"{index} {escape(word)}", "th", "text-align:left")}{cells}</tr>')
    return (f'<div class="nerqa-subword-result"><div style="overflow-x:auto">{piece_table}</div>'
            f'{_table(rows, "nerqa-tag-probabilities")}</div>')


# -- 2. span map -----------------------------------------------------------------------------------
SPAN_LEGEND = (f'<div class="nerqa-legend" style="font-size:0.8em;color:#444">bars under each token '
               f'(strength relative to the window\'s most likely token): '
               f'<span style="background:rgb({START_RGB});color:white;padding:0 4px">P(start)</span> '
               f'<span style="background:rgb({END_RGB});color:white;padding:0 4px">P(end)</span> · '
               f'<span style="background:#e8e8e8;padding:0 4px">shared by two windows</span> · '
               f'<span style="background:{ANSWER_COLOUR};padding:0 4px">chosen answer</span> · '
               f'<span style="border-bottom:2px dotted #333">runner-up</span></div>')


def _token_html(context: str, token, ranks: list[int], shared: bool, scale: tuple[float, float] = (1.0, 1.0)) -> str:
    classes = ["nerqa-token"] + (["nerqa-overlap"] if shared else [])
    classes += ["nerqa-span-best"] if 1 in ranks else ["nerqa-span-runner-up"] if ranks else []
    text_style = (f"background:{ANSWER_COLOUR}" if 1 in ranks else "border-bottom:2px dotted #333" if ranks else "")
    title = f"P(start) {token.start_probability:.3f} · P(end) {token.end_probability:.3f}"
    title += f" · answer rank {', '.join(map(str, ranks))}" if ranks else ""
    bars = "".join(f'<span style="display:block;height:5px;background:rgba({rgb},{min(p / top, 1.0):.3f})"></span>'
                   for rgb, p, top in ((START_RGB, token.start_probability, scale[0]),
                                       (END_RGB, token.end_probability, scale[1])))
    return (f'<span class="{" ".join(classes)}" data-start="{token.start}" data-end="{token.end}" '
            f'data-start-probability="{token.start_probability:.4f}" data-end-probability="{token.end_probability:.4f}" '
            f'title="{title}" style="display:inline-block;margin:1px 0;{"background:#e8e8e8" if shared else ""}">'
            f'<span style="{text_style}">{escape(context[token.start:token.end])}</span>{bars}</span>')


def span_map_html(span_map) -> str:
    """A ``demo.SpanMap``: one block per window (its character range, its context tokens with a
    P(start) and a P(end) bar each, as strong as the probability relative to the window's largest
    one; tokens shared with a neighbour on grey, the chosen answer yellow, runner-ups underlined),
    then the answers with their scores and windows. Raw probabilities are in ``data-*`` and titles."""
    context, overlaps = span_map.context, span_map.overlaps()
    answers = [answer for answer in span_map.answers if answer["end"] > answer["start"]]
    blocks = []
    for window in span_map.windows:
        cells, previous_end = [], None
        scale = (max((token.start_probability for token in window.tokens), default=1.0) or 1.0,
                 max((token.end_probability for token in window.tokens), default=1.0) or 1.0)
        for token in window.tokens:
            if previous_end is not None and token.start > previous_end:
                cells.append(" ")
            ranks = [rank for rank, answer in enumerate(span_map.answers, 1) if answer["end"] > answer["start"]
                     and answer["start"] < token.end and token.start < answer["end"]]
            shared = any(start < token.end and token.start < end for start, end in overlaps)
            cells.append(_token_html(context, token, ranks, shared, scale))
            previous_end = token.end
        blocks.append(
            f'<div class="nerqa-window" data-window="{window.index}" data-start="{window.char_start}" '
            f'data-end="{window.char_end}" style="border-left:3px solid #999;padding-left:6px;margin:6px 0">'
            f'<div style="font-size:0.8em;color:#555">window {window.index + 1} of {len(span_map.windows)}: '
            f'characters {window.char_start}–{window.char_end}</div><div style="line-height:1.6">{"".join(cells)}</div></div>')
    header = "<tr>" + "".join(_cell(name, "th") for name in ("rank", "answer", "score", "characters", "windows")) + "</tr>"
    rows = [header] + [
        f'<tr class="nerqa-span-answer">{_cell(str(rank))}{_cell(escape(answer["answer"]) or "(no answer)", style="text-align:left")}'
        f'{_cell(format(answer["score"], ".3f"))}{_cell(str(answer["start"]) + "–" + str(answer["end"]))}'
        f'{_cell(", ".join(str(i + 1) for i in span_map.windows_holding(answer["start"], answer["end"])))}</tr>'
        for rank, answer in enumerate(span_map.answers, 1)]
    note = "" if answers else '<div class="nerqa-note" style="color:#666">(no answer span)</div>'
    return (f'<div class="nerqa-span-map" data-windows="{len(span_map.windows)}">{SPAN_LEGEND}{"".join(blocks)}'
            f'{note}{_table(rows, "nerqa-span-answers")}</div>')


# -- 3. examples -----------------------------------------------------------------------------------
def _side_by_side(left: str, right: str) -> str:
    column = "flex:1;min-width:18em;margin-right:1em"
    return (f'<div style="display:flex;flex-wrap:wrap"><div class="nerqa-gold" style="{column}"><b>gold</b>{left}</div>'
            f'<div class="nerqa-predicted" style="{column}"><b>predicted</b>{right}</div></div>')


def _describe(entity, words) -> str:
    return "—" if entity is None else f"{escape(entity[0])}: {escape(' '.join(words[entity[1]:entity[2]]))}"


def ner_example_html(example) -> str:
    """A ``demo.NerExample``: the sentence with gold and with predicted entities side by side, and
    one table row per entity naming the error (missed, spurious, wrong type, wrong boundary)."""
    text, spans = join_words(example.words)

    def marked(tags):
        return highlight_entities_html(text, [{"entity": kind, "start": spans[first][0], "end": spans[stop - 1][1]}
                                              for kind, first, stop in iob2_spans(tags)])

    header = "<tr>" + "".join(_cell(name, "th") for name in ("", "gold", "predicted")) + "</tr>"
    rows = [header]
    for error in example.errors:
        kind = _cell(escape(error.kind), style=f"color:{ERROR_COLOURS[error.kind]};font-weight:bold",
                     attributes=f' class="nerqa-error-kind" data-kind="{error.kind}"')
        rows.append(f"<tr>{kind}{_cell(_describe(error.gold, example.words))}"
                    f"{_cell(_describe(error.predicted, example.words))}</tr>")
    wrong = sum(error.kind != "correct" for error in example.errors)
    summary = f'<div class="nerqa-note">{len(example.errors) - wrong} correct, {wrong} wrong</div>'
    return (f'<div class="nerqa-example-result" data-task="ner">{_side_by_side(marked(example.gold_tags), marked(example.predicted_tags))}'
            f'{summary}{_table(rows, "nerqa-errors")}</div>')


def qa_example_html(example) -> str:
    """A ``demo.QaExample``: the question, the context with the gold and with the predicted answer
    marked side by side, every gold answer, and EM / F1 (0–100) of the prediction."""
    gold = example.gold[0] if example.gold else None
    scores = (f'<div class="nerqa-qa-scores" data-exact-match="{example.exact_match:.1f}" data-f1="{example.f1:.1f}">'
              f'EM {example.exact_match:.0f} · F1 {example.f1:.1f} · predicted “{escape(example.predicted["answer"])}” · '
              f'gold {" / ".join("“" + escape(answer["answer"]) + "”" for answer in example.gold) or "(none)"}</div>')
    return (f'<div class="nerqa-example-result" data-task="qa"><div><b>Q:</b> {escape(example.question)}</div>{scores}'
            f'{_side_by_side(highlight_answer_html(example.context, gold), highlight_answer_html(example.context, example.predicted))}</div>')


# -- 4. models side by side ------------------------------------------------------------------------
def comparison_html(outputs: Sequence, text: str) -> str:
    """One column per model (``demo_runs.ModelOutputs``): validation NER F1, QA EM and F1, then its
    entities in ``text`` and its answer; "not trained" for a task with λ = 0."""
    def score(values, key):
        return f"{values[key]:.1f}" if key in values else "—"

    header = "<tr>" + _cell("", "th") + "".join(
        _cell(escape(output.name), "th", attributes=f' data-run="{escape(output.name, quote=True)}"') for output in outputs) + "</tr>"
    rows = [header]
    for label, key in (("NER F1 (validation)", "ner_f1"), ("QA EM (validation)", "qa_exact_match"), ("QA F1 (validation)", "qa_f1")):
        rows.append("<tr>" + _cell(label, "th") + "".join(_cell(score(output.scores, key)) for output in outputs) + "</tr>")
    untrained = '<span style="color:#999">not trained on this task</span>'
    rows.append("<tr>" + _cell("entities", "th") + "".join(_cell(
        untrained if output.entities is None else highlight_entities_html(text, output.entities), style="text-align:left")
        for output in outputs) + "</tr>")
    rows.append("<tr>" + _cell("answer", "th") + "".join(_cell(
        untrained if output.answer is None else
        f'<span class="nerqa-model-answer">{escape(output.answer["answer"]) or "(no answer)"}</span> ({output.answer["score"]:.2f})')
        for output in outputs) + "</tr>")
    return f'<div class="nerqa-comparison-result">{_table(rows, "nerqa-comparison")}</div>'


# -- 5 and 6. figures ------------------------------------------------------------------------------
def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, ncols, squeeze=False)[0]


def task_mix_figure(mix) -> "Figure":
    """A ``demo_runs.TaskMix`` over the steps: the share of steps so far that trained each task
    (solid) against its planned share (dashed)."""
    figure, (ax,) = _figure(6.0, 3.0)
    for index, (task, shares) in enumerate(mix.cumulative().items()):
        colour = TASK_COLOURS.get(task, f"C{index + 2}")
        ax.plot(shares.index, shares.to_numpy(), color=colour, label=f"{task} ({mix.batch_counts[task]} batches)")
        ax.axhline(mix.shares[task], color=colour, linestyle="--", linewidth=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("share of steps so far")
    ax.legend(fontsize=8)
    return figure


def loss_figure(curves: pd.DataFrame, weights: pd.DataFrame | None = None, task: str = "") -> "Figure":
    """Loss curves (``demo_runs.loss_curves``: one smoothed line per run, raw points faint) and,
    when ``weights`` (``demo_runs.task_weight_curves``) has rows, the task weights over the steps
    beside them."""
    panels = 2 if weights is not None and len(weights) else 1
    figure, axes = _figure(5.0 * panels, 3.2, ncols=panels)
    for index, (run, rows) in enumerate(curves.groupby("run", sort=False)):
        axes[0].plot(rows["step"], rows["loss"], color=f"C{index}", alpha=0.2, linewidth=0.8)
        axes[0].plot(rows["step"], rows["smoothed"], color=f"C{index}", label=run)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(f"{task.upper()} training loss".strip())
    if len(curves):
        axes[0].legend(fontsize=7)
    if panels == 2:
        for index, ((run, task_name), rows) in enumerate(weights.groupby(["run", "task"], sort=False)):
            axes[1].plot(rows["step"], rows["weight"], color=f"C{index}", label=f"{run}: λ {task_name}")
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("task weight λ")
        axes[1].legend(fontsize=7)
    return figure
