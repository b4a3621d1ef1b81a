"""Automatic classification of a support request: topic, scope and urgency.

The regulation sorts requests into five scope sections (installation, performance, updates,
product errors, development), each with things support does and does not do, and it grants the
emergency ("оперативная") level only when the public or administrative part of the site is
completely unusable. This module turns those rules, as written in
``mappings/classification.yaml``, into a first guess for a ticket. An agent's explicit choice
always overrides it, so the guess favours being explainable: every decision carries the text
that caused it.

How a decision is made:

* **Topic.** Every distinct match of a topic indicator scores ``indicator.weight`` times the
  field weight (the subject outweighs the body: customers put the gist there). Matches of
  cross-topic out-of-scope reasons score for the topic that lists the reason, so "write us a
  payment module" is a development request even without a development keyword. The highest
  score wins; ties go to the topic listed first in ``topic_priority``; no match at all gives
  ``other``.
* **Scope.** ``out`` when any applicable out-of-scope reason matches. Cross-topic reasons apply
  whatever the topic; the others only when their own topic won. Reason ids are reported in the
  order the rules file declares them.
* **Urgency.** ``emergency`` when a trigger matches and no cancel matches ("не срочно",
  "staging", "частично", ...). The regulation's second emergency case, a critical product error
  confirmed by support staff, needs a human and is left to the agent override.

Pure: no clock, no I/O. Patterns are compiled once per :class:`Classifier`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from connector.policy.classification_rules import (
    FALLBACK_TOPIC,
    ClassificationRules,
    PatternSet,
    TopicId,
    normalize_with_offsets,
)

__all__ = [
    "MAX_MATCH_CHARS",
    "Classification",
    "ClassificationRules",
    "Classifier",
    "Evidence",
    "EvidenceKind",
    "FieldName",
]

EvidenceKind = Literal["topic", "out_of_scope", "emergency", "not_emergency"]
FieldName = Literal["subject", "body"]

MAX_MATCH_CHARS = 80
"""Longest quote kept in :class:`Evidence`; agents read it in a note, not a report."""


class Evidence(BaseModel):
    """One piece of request text that influenced the decision.

    Attributes:
        kind: Which decision it supports.
        rule: The topic id, out-of-scope reason id or emergency rule id that matched.
        match: The matched text as the customer wrote it, at most 80 characters.
        field: Where it was found.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EvidenceKind
    rule: str
    match: str
    field: FieldName


class Classification(BaseModel):
    """The automatic classification of one request.

    Attributes:
        topic: The winning scope section, or ``other`` (one of the ``TopicId`` values; typed
            as ``str`` so callers can compare it with agent-chosen topics).
        scope: ``out`` when any applicable out-of-scope reason matched.
        urgency: ``emergency`` when the request reads as a complete outage and nothing softens it.
        out_reasons: Ids of the matched out-of-scope reasons, in rules-file order.
        evidence: The matches behind each part of the decision: indicators of the chosen topic,
            applicable out-of-scope reasons, emergency triggers, and cancels (only when a
            trigger matched, since only then do they change anything).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    scope: Literal["in", "out"]
    urgency: Literal["emergency", "standard"]
    out_reasons: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: EvidenceKind
    rule_id: str
    topic: TopicId
    weight: int  # score per distinct match for ``topic``; 0 = does not vote
    cross_topic: bool
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Field:
    name: FieldName
    weight: int
    source: str
    normalized: str
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, name: FieldName, text: str, weight: int) -> _Field:
        source, normalized, offsets = normalize_with_offsets(text)
        return cls(name, weight, source, normalized, offsets)

    def quote(self, start: int, end: int) -> str:
        """Return the original text behind ``normalized[start:end]``, shortened for display."""
        original = self.source[self.offsets[start] : self.offsets[end - 1] + 1].strip()
        if len(original) > MAX_MATCH_CHARS:
            return original[: MAX_MATCH_CHARS - 1] + "…"
        return original


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: _Rule
    field: _Field
    quote: str

    def evidence(self) -> Evidence:
        return Evidence(
            kind=self.rule.kind, rule=self.rule.rule_id, match=self.quote, field=self.field.name
        )


class Classifier:
    """Classifies requests with one validated set of rules.

    Build it once per rules version: construction compiles every pattern, classification only
    runs them.
    """

    def __init__(self, rules: ClassificationRules) -> None:
        """Compile ``rules``.

        Args:
            rules: Validated rules, normally ``ClassificationRules.model_validate(yaml_data)``.
        """
        self._rules = rules
        self._priority: dict[TopicId, int] = {
            topic: rank for rank, topic in enumerate(rules.topic_priority)
        }
        self._indicators: list[_Rule] = []
        self._reasons: list[_Rule] = []
        for topic_id, topic in rules.topics.items():
            for indicator in topic.indicators:
                self._indicators.append(
                    _compile("topic", topic_id, topic_id, indicator, indicator.weight, True)
                )
            for reason in topic.out_of_scope:
                votes = reason.weight if reason.cross_topic and topic_id != FALLBACK_TOPIC else 0
                self._reasons.append(
                    _compile("out_of_scope", reason.id, topic_id, reason, votes, reason.cross_topic)
                )
        emergency = rules.emergency
        self._triggers = [
            _compile("emergency", r.id, FALLBACK_TOPIC, r, 0, True) for r in emergency.triggers
        ]
        self._cancels = [
            _compile("not_emergency", r.id, FALLBACK_TOPIC, r, 0, True) for r in emergency.cancels
        ]

    @property
    def rules(self) -> ClassificationRules:
        """The rules this classifier was built from."""
        return self._rules

    def classify(self, subject: str, body: str) -> Classification:
        """Classify one request.

        Args:
            subject: The ticket title.
            body: The customer's text (first article); quoted history makes matches noisier.

        Returns:
            Topic, scope, urgency, out-of-scope reason ids and the evidence for each.
        """
        weights = self._rules.field_weights
        fields = (
            _Field.of("subject", subject, weights.subject),
            _Field.of("body", body, weights.body),
        )
        indicator_hits = list(_scan(self._indicators, fields))
        reason_hits = list(_scan(self._reasons, fields))
        topic = self._choose_topic([*indicator_hits, *reason_hits])
        reason_hits = [h for h in reason_hits if h.rule.cross_topic or h.rule.topic == topic]
        trigger_hits = list(_scan(self._triggers, fields))
        cancel_hits = list(_scan(self._cancels, fields)) if trigger_hits else []
        evidence_hits = [
            *(h for h in indicator_hits if h.rule.topic == topic),
            *reason_hits,
            *trigger_hits,
            *cancel_hits,
        ]
        return Classification(
            topic=topic,
            scope="out" if reason_hits else "in",
            urgency="emergency" if trigger_hits and not cancel_hits else "standard",
            out_reasons=tuple(dict.fromkeys(h.rule.rule_id for h in reason_hits)),
            evidence=tuple(h.evidence() for h in evidence_hits),
        )

    def _choose_topic(self, hits: Iterable[_Hit]) -> TopicId:
        scores: dict[TopicId, int] = {}
        for hit in hits:
            if hit.rule.weight:
                gained = hit.rule.weight * hit.field.weight
                scores[hit.rule.topic] = scores.get(hit.rule.topic, 0) + gained
        if not scores:
            return FALLBACK_TOPIC
        return min(scores, key=lambda topic: (-scores[topic], self._priority.get(topic, 99)))


def _compile(
    kind: EvidenceKind,
    rule_id: str,
    topic: TopicId,
    patterns: PatternSet,
    weight: int,
    cross_topic: bool,
) -> _Rule:
    return _Rule(kind, rule_id, topic, weight, cross_topic, patterns.compile())


def _scan(rules: Iterable[_Rule], fields: Iterable[_Field]) -> Iterator[_Hit]:
    """Yield each rule's distinct matches, subject before body, in text order.

    Repeating a word does not make a request more about a topic, so a match text counts once
    per rule and field.
    """
    fields = tuple(fields)
    for rule in rules:
        for field in fields:
            seen: set[str] = set()
            for match in rule.pattern.finditer(field.normalized):
                # a zero-width match (an admin regex like "(?=x)") has nothing to quote
                if match.end() > match.start() and match.group() not in seen:
                    seen.add(match.group())
                    yield _Hit(rule, field, field.quote(match.start(), match.end()))
