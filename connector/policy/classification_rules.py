"""Schema and pattern language of ``mappings/classification.yaml``.

The rules are data an admin edits, so the pattern language has two levels:

* ``phrases`` are plain text. They are normalized like the request text (lower case, ``ё`` read as
  ``е``, runs of whitespace collapsed), so case and ``ё``/``е`` do not matter. Words are separated
  by any run of spaces or punctuation. Two tokens have a meaning: a trailing ``*`` on a word
  accepts any ending (``доработ*`` matches ``доработать`` and ``доработку``, which Russian
  morphology needs), and a standalone ``...`` accepts up to three words in between
  (``разработ* ... компонент*``).
* ``regex`` entries are Python regular expressions, matched case-insensitively against the
  normalized text, for the few cases phrases cannot express.

Both kinds match whole words only: a match may neither start nor end inside a word, so ``500``
does not fire on ``15000`` and ``медленно`` does not fire on ``немедленно``. Every pattern is
compiled during validation, so a broken entry fails with a :class:`pydantic.ValidationError`
whose location is the key path of that entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

TopicId = Literal["installation", "performance", "updates", "errors", "development", "other"]
"""Topics of the regulation's scope sections 1-5, plus ``other`` for everything else."""

ScoredTopicId = Literal["installation", "performance", "updates", "errors", "development"]
"""Topics a request can be scored into; ``other`` is only the fallback."""

FALLBACK_TOPIC: TopicId = "other"
SCORED_TOPICS: tuple[ScoredTopicId, ...] = get_args(ScoredTopicId)

_GAP_TOKEN = "..."
_GAP = r"(?:\W+\w+){0,3}\W+"
_WORD_SEPARATOR = r"\W+"
# A match must not split a word: it may start after a non-word character or with one, and
# likewise at its end. Plain \b would reject phrases such as "/bitrix/admin/". Phrases know
# their first and last character and use the cheaper one-sided form; regex entries cannot.
_WORD_CHAR = re.compile(r"\w")
_NO_SPLIT_START = r"(?:(?<!\w)|(?!\w))"
_NO_SPLIT_END = r"(?:(?!\w)|(?<!\w))"
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def normalize_text(text: str) -> str:
    """Return ``text`` in the form patterns are matched against.

    Returns:
        NFC form, lower case, ``ё`` replaced by ``е``, whitespace runs collapsed and trimmed.
    """
    return normalize_with_offsets(text)[1]


def normalize_with_offsets(text: str) -> tuple[str, str, tuple[int, ...]]:
    """Normalize ``text`` and remember where each normalized character came from.

    Evidence must quote the customer's own words, not the folded form, so every normalized
    character keeps the index of its origin in the NFC form of ``text``.

    Returns:
        The NFC form of ``text``, its normalized form, and for each normalized character the
        index in the NFC form it was produced from.
    """
    source = unicodedata.normalize("NFC", text)
    chars: list[str] = []
    offsets: list[int] = []
    gap_at: int | None = None
    for index, char in enumerate(source):
        if char.isspace():
            if chars and gap_at is None:
                gap_at = index
            continue
        if gap_at is not None:
            chars.append(" ")
            offsets.append(gap_at)
            gap_at = None
        for folded in _fold(char):
            chars.append(folded)
            offsets.append(index)
    return source, "".join(chars), tuple(offsets)


def _fold(text: str) -> str:
    return text.lower().replace("ё", "е")


def _fold_regex(pattern: str) -> str:
    # Only ё is rewritten: lower-casing would turn \S, \W, \D into their opposites.
    return pattern.replace("ё", "е").replace("Ё", "Е")


def phrase_to_regex(phrase: str) -> tuple[bool, str]:
    """Translate an admin phrase into the regex it stands for.

    Returns:
        Whether the phrase starts with a word character (then the caller must make sure the
        match does not start inside a word), and the regex, already guarded at its end.

    Raises:
        ValueError: The phrase is empty or uses ``*`` / ``...`` outside their documented places.
    """
    words = normalize_text(phrase).split()
    if not words or words[0] == _GAP_TOKEN or words[-1] == _GAP_TOKEN:
        raise ValueError("a phrase needs at least one word and cannot start or end with '...'")
    parts: list[str] = []
    for index, word in enumerate(words):
        if index and word != _GAP_TOKEN:
            parts.append(_GAP if words[index - 1] == _GAP_TOKEN else _WORD_SEPARATOR)
        if word == _GAP_TOKEN:
            continue
        stem = word.removesuffix("*")
        if "*" in stem or not stem:
            raise ValueError(f"'*' may only end a word, got {word!r}")
        parts.append(re.escape(stem) + (r"\w*" if word.endswith("*") else ""))
    end = r"(?!\w)" if _WORD_CHAR.match(words[-1].removesuffix("*")[-1]) else ""
    return bool(_WORD_CHAR.match(words[0])), "".join(parts) + end


def regex_to_regex(pattern: str) -> str:
    """Wrap an admin regex so that it, too, matches whole words only."""
    return f"{_NO_SPLIT_START}(?:{_fold_regex(pattern)}){_NO_SPLIT_END}"


def compile_patterns(phrases: Iterable[str], regexes: Iterable[str]) -> re.Pattern[str]:
    r"""Compile phrases and regexes into one case-insensitive, whole-word alternation.

    Phrases that start with a word character share a single ``(?<!\w)`` guard in front of their
    group: Python's ``re`` scans several times faster that way than with a guard per branch.
    """
    word_initial: list[str] = []
    branches: list[str] = []
    for phrase in phrases:
        starts_with_word, body = phrase_to_regex(phrase)
        (word_initial if starts_with_word else branches).append(body)
    branches.extend(regex_to_regex(pattern) for pattern in regexes)
    if word_initial:
        branches.insert(0, r"(?<!\w)(?:" + "|".join(word_initial) + ")")
    return re.compile("|".join(f"(?:{branch})" for branch in branches), re.IGNORECASE)


def _check_phrase(phrase: str) -> str:
    phrase_to_regex(phrase)
    return phrase


def _check_regex(pattern: str) -> str:
    if _NUMBERED_BACKREF.search(pattern):
        raise ValueError("numbered back-references are not supported; use (?P<name>...)")
    try:
        compiled = compile_patterns([], [pattern])
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc
    if compiled.fullmatch(""):
        raise ValueError("the regular expression matches empty text")
    return pattern


def _number_as_text(value: object) -> object:
    # YAML reads a bare "- 500" as an integer; an admin listing an HTTP status means the text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Phrase = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_check_phrase)]
Regex = Annotated[str, AfterValidator(_check_regex)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatternSet(_Frozen):
    """Phrases and regexes that together make up one rule."""

    phrases: tuple[Phrase, ...] = ()
    regex: tuple[Regex, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.phrases and not self.regex:
            raise ValueError("give at least one entry in 'phrases' or 'regex'")
        self.compile()
        return self

    def compile(self) -> re.Pattern[str]:
        """All entries as one whole-word pattern on normalized text."""
        return compile_patterns(self.phrases, self.regex)


class Indicator(PatternSet):
    """Patterns suggesting a topic; ``weight`` lets a precise phrase outvote a vague word."""

    weight: int = Field(default=1, ge=1, le=10)
    source: Text


class OutOfScopeReason(PatternSet):
    """One kind of request the regulation keeps out of technical support.

    ``cross_topic`` says whether the reason applies whatever topic wins (a request to write a
    payment module is out of scope everywhere) or only when its own topic wins (``proxy`` means
    an update-server problem only in a request about updates). Cross-topic reasons also count
    towards their topic's score, with ``weight`` as for an indicator; the default of 2 reflects
    that a reason phrase is more specific than a typical indicator.
    """

    id: Slug
    label: Text
    source: Text
    cross_topic: bool = True
    weight: int = Field(default=2, ge=1, le=10)


class Topic(_Frozen):
    """A scope section of the regulation: what points to it and what it excludes."""

    label: Text
    source: Text
    indicators: tuple[Indicator, ...] = ()
    out_of_scope: tuple[OutOfScopeReason, ...] = ()


class EmergencyRule(PatternSet):
    """A trigger for, or a cancellation of, the emergency ("оперативная") level."""

    id: Slug
    label: Text
    source: Text


class EmergencyRules(_Frozen):
    """Triggers say the site is completely unusable; any matching cancel overrides them."""

    triggers: tuple[EmergencyRule, ...] = Field(min_length=1)
    cancels: tuple[EmergencyRule, ...] = ()


class FieldWeights(_Frozen):
    """How much one match counts in the subject versus the body."""

    subject: int = Field(default=3, ge=1, le=10)
    body: int = Field(default=1, ge=1, le=10)


class ClassificationRules(_Frozen):
    """The whole ``mappings/classification.yaml`` document.

    ``topic_priority`` breaks score ties: the topic listed first wins. It must list the five
    scored topics exactly once.
    """

    field_weights: FieldWeights = FieldWeights()
    topic_priority: tuple[ScoredTopicId, ...] = SCORED_TOPICS
    topics: dict[TopicId, Topic]
    emergency: EmergencyRules

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if sorted(self.topic_priority) != sorted(SCORED_TOPICS):
            raise ValueError(f"topic_priority must list each of {', '.join(SCORED_TOPICS)} once")
        fallback = self.topics.get(FALLBACK_TOPIC)
        if fallback is not None and fallback.indicators:
            raise ValueError("topics.other is the fallback and cannot have indicators")
        _require_unique(
            (f"topics.{topic_id}.out_of_scope[{index}]", reason.id)
            for topic_id, topic in self.topics.items()
            for index, reason in enumerate(topic.out_of_scope)
        )
        _require_unique(
            (f"emergency.{group}[{index}]", rule.id)
            for group in ("triggers", "cancels")
            for index, rule in enumerate(getattr(self.emergency, group))
        )
        return self


def _require_unique(located_ids: Iterable[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for location, rule_id in located_ids:
        if rule_id in seen:
            raise ValueError(f"duplicate id {rule_id!r} at {location} (first at {seen[rule_id]})")
        seen[rule_id] = location
