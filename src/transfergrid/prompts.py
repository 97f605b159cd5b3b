"""Item -> prompt text: one context plus one continuation per choice.

A prompt is always `context` + `continuations[i]` (lm-evaluation-harness semantics: a continuation is
the task's target delimiter followed by the choice text). Scoring sums the log-probabilities of a
continuation's tokens given the context; training puts the loss on `continuations[gold]` only.

Formats
-------
`cloze` mirrors, per benchmark, the zero-shot prompt of the lm-evaluation-harness (0.4.13) task:

=================  ==========================================  ====================================
benchmark          harness task (lm_eval/tasks/...)            context -> continuation
=================  ==========================================  ====================================
arc_challenge      okapi/arc_multilingual (`arc_{lang}`);      "Question: {q}\\nAnswer:" -> " {choice}"
                   English: arc/arc_challenge                  (okapi `preprocess` on q and choices)
mmlu               okapi/mmlu_multilingual (`m_mmlu_{lang}`);  "{q}\\nA. ..\\nD. ..\\nAnswer:" -> " A".." D"
                   English: mmlu/default (with its             (the harness's MMLU tasks are lettered)
                   "The following are multiple choice ..."
                   description)
truthfulqa_mc1     okapi/truthfulqa_multilingual (mc1);        6-shot QA primer + "\\n\\nQ: {q}\\nA:" -> " {choice}"
                   English: truthfulqa/truthfulqa_mc1
hellaswag          okapi/hellaswag_multilingual; hellaswag     "{label}: {ctx_a} {Ctx_b}" -> " {ending}"
global_mmlu_lite   global_mmlu/default (`global_mmlu_{lang}`)  "{q}\\nA. ..\\nAnswer:" -> " A".." D"
belebele           belebele (`belebele_{code}`)                "P: {passage}\\nQ: {q}\\nA: ..\\nAnswer:" -> " A".." D"
xcopa              xcopa (`xcopa_{lang}`, per-language         "{premise minus '.'} {because|therefore}"
                   connectors); English: super_glue/copa       -> " {choice, first letter lowered}"
xstorycloze        xstorycloze (`xstorycloze_{lang}`)          "{s1} {s2} {s3} {s4}" -> " {ending}"
mgsm (generative)  mgsm/direct (`mgsm_direct_{lang}`)          "{Question word}: {q}\\n{Answer word}:" -> greedy
=================  ==========================================  ====================================

Harness quirks are kept on purpose so that numbers are comparable with published harness results:
English COPA's choices carry their own leading space (continuation "  choice", two spaces), and
the okapi tasks use the English "Question:"/"Answer:" words in every language.

`letters` lists the options "A. ...", "B. ..." after the question and ends with "Answer:";
the continuations are " A", " B", ... (the reference pipeline's training format). `numbers` lists
"1. ...", "2. ..." and scores " 1", " 2", ... (study 2's format).

With `chat_template=True` (as the harness's `--apply_chat_template`), the whole non-chat context is
the user turn (a task description, as English MMLU's, becomes the system turn), the context ends
with the assistant generation prompt, and the target delimiter is dropped (continuations carry no
leading space).

Items (from `transfergrid.data`): `context` is the question (premise for xcopa, the four story
sentences for xstorycloze); `meta` may carry `passage` (belebele), `question` ("cause"/"effect",
xcopa), `subject` (English MMLU), `activity_label`/`ctx_a`/`ctx_b` (hellaswag), `answer` (mgsm).
Raw upstream text is expected; the harness's preprocessing is applied here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from transfergrid.errors import DataError, ModelError, UserError
from transfergrid.records import Item
from transfergrid.versions import PROMPT_VERSION  # noqa: F401 - bump it when a template below changes

Format = Literal["cloze", "letters", "numbers"]  # the study file's `format` fields
FORMATS: tuple[str, ...] = get_args(Format)
GENERATIVE_TASKS = ("mgsm",)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Prompt:
    """Context plus one continuation per choice; `continuations[i] = delimiter + choice_texts[i]`.

    Generative prompts (mgsm) have no continuations; `stop` holds the strings that end generation.
    """

    context: str
    continuations: tuple[str, ...]
    gold: int
    fmt: str
    delimiter: str = " "
    stop: tuple[str, ...] = ()
    system: str | None = None

    @property
    def choice_texts(self) -> tuple[str, ...]:
        """The harness's `doc_to_choice` strings: what acc_norm divides by (in characters)."""
        n = len(self.delimiter)
        return tuple(c[n:] for c in self.continuations)


# --- harness texts -------------------------------------------------------------------------

# truthfulqa (and okapi truthfulqa_multilingual): the fixed 6-shot primer of the task.
TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)

# xcopa/utils.py (and super_glue/copa for English): connector per language for cause / effect.
XCOPA_CONNECTORS = {
    "en": ("because", "therefore"),
    "et": ("sest", "seetõttu"),
    "ht": ("poukisa", "donk sa"),
    "it": ("perché", "quindi"),
    "id": ("karena", "maka"),
    "qu": ("imataq", "chaymi"),
    "sw": ("kwa sababu", "kwa hiyo"),
    "zh": ("因为", "所以"),
    "ta": ("காரணமாக", "எனவே"),
    "th": ("เพราะ", "ดังนั้น"),
    "tr": ("çünkü", "bu yüzden"),
    "vi": ("bởi vì", "vì vậy"),
}

# mgsm/direct/mgsm_direct_{lang}.yaml: "{question word}{question}\n{answer word}" for test items,
# generation stopped at the question word (stripped), "</s>" or "<|im_end|>".
MGSM_WORDS = {
    "bn": ("প্রশ্ন: ", "Answer:"),
    "de": ("Frage: ", "Antwort:"),
    "en": ("Question: ", "Answer:"),
    "es": ("Pregunta: ", "Respuesta:"),
    "fr": ("Question : ", "Réponse :"),
    "ja": ("問題： ", "Answer:"),
    "ru": ("Задача: ", "Answer:"),
    "sw": ("Swali: ", "Answer:"),
    "te": ("ప్రశ్న: ", "Answer:"),
    "th": ("โจทย์: ", "Answer:"),
    "zh": ("问题： ", "Answer:"),
}


def okapi_preprocess(text: str) -> str:
    """okapi/*/utils.py `preprocess` (also hellaswag/utils.py): strip WikiHow bracket artefacts."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:] if text else text


def _options(prefixes: list[str], options: tuple[str, ...], sep: str) -> str:
    return "".join(f"\n{p}{sep}{o}" for p, o in zip(prefixes, options))


# --- per-benchmark pieces ------------------------------------------------------------------
# Each returns (system, stem, choices, delimiter): `stem` is the question part, `choices` the
# harness's cloze choice texts.


def _meta(item: Item, key: str) -> str:
    value = item.meta.get(key) if item.meta else None
    if value is None or value == "":
        raise DataError(f"{item.task} prompts need meta[{key!r}]", item=item.id, field=f"meta.{key}")
    return str(value)


def _xcopa_stem(item: Item) -> str:
    connectors = XCOPA_CONNECTORS.get(item.lang)
    if connectors is None:
        raise DataError(f"xcopa has no harness connector for language {item.lang!r} "
                        f"(known: {', '.join(sorted(XCOPA_CONNECTORS))})", item=item.id)
    kind = _meta(item, "question")
    if kind not in ("cause", "effect"):
        raise DataError(f"expected 'cause' or 'effect', got {kind!r}", item=item.id, field="meta.question")
    # copa/xcopa utils: drop the premise's final period, then add the connector.
    return item.context.strip()[:-1] + " " + connectors[0 if kind == "cause" else 1]


def _hellaswag_query(item: Item) -> str:
    meta = item.meta or {}
    if "ctx_a" in meta:
        ctx = meta["ctx_a"] + " " + str(meta.get("ctx_b", "")).capitalize()
        return okapi_preprocess(str(meta.get("activity_label", "")) + ": " + ctx)
    return okapi_preprocess(item.context)


def _stem_and_choices(item: Item) -> tuple[str | None, str, tuple[str, ...]]:
    """(system, stem, cloze choices) in the harness's preprocessing, for every format."""
    task, en = item.task, item.lang == "en"
    if task == "arc_challenge":
        if en:  # arc/arc_challenge.yaml: raw text
            return None, item.context, item.choices
        return None, okapi_preprocess(item.context), tuple(okapi_preprocess(c) for c in item.choices)
    if task == "mmlu":
        system = None
        if en and item.meta and item.meta.get("subject"):
            subject = str(item.meta["subject"]).replace("_", " ")
            system = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
        return system, item.context.strip(), item.choices
    if task == "global_mmlu_lite":
        return None, item.context.strip(), item.choices
    if task == "truthfulqa_mc1":
        question = item.context if en else okapi_preprocess(item.context)
        return None, question, item.choices
    if task == "hellaswag":
        return None, _hellaswag_query(item), tuple(okapi_preprocess(c) for c in item.choices)
    if task == "belebele":
        return None, item.context.strip(), item.choices
    if task == "xcopa":
        choices = tuple(_lower_first(c) for c in item.choices)
        if en:  # super_glue/copa/utils.py puts a space before each choice (kept: harness quirk)
            choices = tuple(" " + c for c in choices)
        return None, _xcopa_stem(item), choices
    if task == "xstorycloze":
        return None, item.context, item.choices
    raise UserError(f"no prompt template for task {task!r} (item {item.id})")


def _cloze(item: Item) -> tuple[str | None, str, tuple[str, ...]]:
    """(system, user text, choice texts) of the harness task; delimiter is ' '."""
    system, stem, choices = _stem_and_choices(item)
    task = item.task
    if task == "arc_challenge":
        return system, f"Question: {stem}\nAnswer:", choices
    if task in ("mmlu", "global_mmlu_lite"):
        letters = list(LETTERS[: len(choices)])
        return system, stem + _options([f"{x}." for x in letters], choices, " ") + "\nAnswer:", tuple(letters)
    if task == "truthfulqa_mc1":
        return system, TRUTHFULQA_PRIMER + "\n\nQ: " + stem + "\nA:", choices
    if task == "belebele":
        letters = list(LETTERS[: len(choices)])
        text = f"P: {_meta(item, 'passage')}\nQ: {stem}" + _options([f"{x}:" for x in letters], choices, " ")
        return system, text + "\nAnswer:", tuple(letters)
    return system, stem, choices  # hellaswag, xcopa, xstorycloze: the stem is the context


def _listed(item: Item, labels: list[str]) -> tuple[str | None, str, tuple[str, ...]]:
    """letters / numbers: question, the options one per line as 'A. text', then 'Answer:'."""
    system, stem, choices = _stem_and_choices(item)
    if item.task == "belebele":
        stem = f"{_meta(item, 'passage')}\n{stem}"
    options = tuple(c.strip() for c in choices)
    if len(options) > len(labels):
        raise DataError(f"{len(options)} choices, more than the {len(labels)} labels of the format",
                        item=item.id, field="choices")
    labels = labels[: len(options)]
    return system, stem + _options([f"{x}." for x in labels], options, " ") + "\nAnswer:", tuple(labels)


def _mgsm(item: Item) -> tuple[str, tuple[str, ...]]:
    words = MGSM_WORDS.get(item.lang)
    if words is None:
        raise DataError(f"mgsm has no harness prompt for language {item.lang!r} "
                        f"(known: {', '.join(sorted(MGSM_WORDS))})", item=item.id)
    question_word, answer_word = words
    stop = (question_word.strip(), "</s>", "<|im_end|>")
    return f"{question_word}{item.context}\n{answer_word}", stop


def chat_text(tokenizer, system: str | None, user: str, *, instead: str = "evaluate without --chat-template") -> str:
    """`system` + `user` as one user turn of the model's chat template, ready for the assistant's
    reply; `instead` is the error's advice when the tokenizer has no template."""
    if tokenizer is None:
        raise ModelError("chat_template=True needs the model's tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ModelError(f"the tokenizer of {name} has no chat template; {instead}")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render(item: Item, fmt: str, *, chat_template: bool = False, tokenizer=None) -> Prompt:
    """The prompt of `item` in format `fmt` ('cloze', 'letters' or 'numbers')."""
    if fmt not in FORMATS:
        raise UserError(f"unknown prompt format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if item.task in GENERATIVE_TASKS:
        if fmt != "cloze":
            raise UserError(f"{item.task} is generative: only the 'cloze' format applies, not {fmt!r}")
        user, stop = _mgsm(item)
        context = chat_text(tokenizer, None, user) if chat_template else user
        return Prompt(context, (), -1, fmt, delimiter="", stop=stop)

    if fmt == "cloze":
        system, user, choices = _cloze(item)
    elif fmt == "letters":
        system, user, choices = _listed(item, list(LETTERS))
    else:
        system, user, choices = _listed(item, [str(i) for i in range(1, 100)])
    if not 0 <= item.gold < len(choices):
        raise DataError(f"gold index {item.gold} outside the {len(choices)} choices", item=item.id, field="gold")

    if chat_template:
        # harness: with a chat template the target delimiter is dropped (no gen_prefix here).
        context, delimiter = chat_text(tokenizer, system, user), ""
    else:
        context, delimiter = (system or "") + user, " "
    return Prompt(context, tuple(delimiter + c for c in choices), item.gold, fmt,
                  delimiter=delimiter, system=system)


def preview(prompt: Prompt) -> str:
    """Human-readable view of a prompt (`transfergrid data show --prompt`): the context, then each
    continuation in repr form so that leading spaces show, the gold one marked."""
    lines = [prompt.context, "-" * 40]
    if not prompt.continuations:
        lines.append(f"(generate until one of {list(prompt.stop)!r})")
    for i, cont in enumerate(prompt.continuations):
        lines.append(f"{'*' if i == prompt.gold else ' '} {i}: {cont!r}")
    return "\n".join(lines)


# --- the reference pipeline's training texts ------------------------------------------------
# kdymkiewicz/Donors-and-Recipients, dataset_processors/*.py (docs/reference-profile.md). Training
# there is not the evaluation prompt: three tasks list lettered options, TruthfulQA is a plain
# question-answer text with the loss on every token.


@dataclass(frozen=True)
class ReferenceText:
    """`prompt` + `target` (answer-only loss, `add_special_tokens=False`) or, when `target` is None,
    one `prompt` text tokenised with special tokens and the loss on every non-pad token."""

    prompt: str
    target: str | None


def _reference_letters(item: Item, n: int = 4) -> str | None:
    """The gold letter among the first `n` options; None when the gold option is past them."""
    return LETTERS[item.gold] if 0 <= item.gold < n else None


def reference_training_text(item: Item) -> ReferenceText | None:
    """The reference's training example for `item`, or None where it skips the item."""
    task, c = item.task, item.choices
    if task == "arc_challenge":
        # The reader skips answers outside A-D and never shows option_e; a 3-option item's missing
        # option_d is None in the hub dataset, and the f-string prints it: "D) None".
        letter = _reference_letters(item)
        if letter is None:
            return None
        c = tuple(c[:4]) + ("None",) * (4 - len(c))
        return ReferenceText(f"Question: {item.context.strip()}\nA) {c[0]}\nB) {c[1]}\nC) {c[2]}\nD) {c[3]}\nAnswer:",
                             " " + letter)
    if task == "global_mmlu_lite":
        letter = _reference_letters(item)
        if letter is None or len(c) != 4:
            raise DataError(f"Global-MMLU items have 4 options; got {len(c)}", item=item.id, field="choices")
        return ReferenceText(f"{item.context.strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:",
                             " " + letter)
    if task == "hellaswag":
        letter = _reference_letters(item)
        if letter is None or len(c) != 4:
            raise DataError(f"HellaSwag items have 4 endings; got {len(c)}", item=item.id, field="choices")
        e = [okapi_preprocess(x) for x in c]
        return ReferenceText(f"{_hellaswag_query(item)}\nA) {e[0]}\nB) {e[1]}\nC) {e[2]}\nD) {e[3]}\nAnswer:",
                             " " + letter)
    if task == "truthfulqa_mc1":
        return ReferenceText(f"Question: {item.context}\nAnswer: {c[item.gold]}", None)
    raise UserError(f"the reference encoding covers arc_challenge, global_mmlu_lite, hellaswag and "
                    f"truthfulqa_mc1, not {task!r} (item {item.id}); use training.encoding = 'default'")
