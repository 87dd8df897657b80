"""Time named by an event: "before the budget meeting", "since the move", "after Leo's interview".

A question can place itself in time by something that happened instead of a date. The event
is a memory too: the best match for the question among the memories that happened (that have
an ``occurred_at``) and hold every one of the event's words. The window runs from the event to
now ("after", "following", "since") or up to it ("before", "prior to") for ``EVENT_REACH``
(people mean the weeks before it: what was asked before the budget meeting is the preparation
for it), the event's own day included (what was realised after the race is often told with the
race). The question, with the event's words it lacks in place of the expression, orders what the
window holds. Like any window it is a preference, not a wall
(``memory.retrieval.time_preference``): when it holds nothing relevant, the best matches
nearest it come back, marked ``outside_window``.

A memory that names the event after "before", "after" or "for" ("send the numbers before the
budget meeting", "bought an adapter for the trip") is about something done around it, not the
event, and is never the anchor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from memory.models import SearchHit, TimeWindow
from memory.retrieval.time_preference import topic_query
from memory.stopwords import STOPWORDS
from memory.timeutil import to_stored

# How far "before the X" reaches back from the event ("after the X" is bounded by now).
EVENT_REACH = timedelta(days=30)
# How many of the question's best matches are looked at for the event itself.
ANCHOR_POOL = 10

_RELATION = r"(?P<relation>before|after|since|prior\s+to|following)"
_OWNER = r"(?P<owner>the|my|our|his|her|their|[^\W\d_][\w-]*'s)"
# The event's words run to the end of the clause: punctuation, the end, or a word that starts another part.
_CLAUSE_END = r"(?=\s*(?:[?.!,;:]|$)|\s+(?:and|but|or|when|while|so|because|with|on|in|at|to|for|if|that|which|who)\b)"
_EVENT = re.compile(rf"\b{_RELATION}\s+{_OWNER}\s+(?P<words>[^\W\d_][\w'-]*(?:\s+[^\W\d_][\w'-]*){{0,4}}?){_CLAUSE_END}", re.I)
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class EventPhrase:
    relation: str  # "before", "after" or "since"
    expression: str  # as the query says it: "before the budget meeting"
    event: str  # what to search for: "budget meeting" ("Leo interview" for "Leo's interview")
    rest: str  # the query with the expression replaced by the event words it lacks: "What did I buy trip ?"
    question: str  # the query without the expression: "What did I buy ?"


def read_event(query: str) -> EventPhrase | None:
    """The event a query places itself by, or None."""
    match = _EVENT.search(query)
    if match is None:
        return None
    relation = re.sub(r"\s+", " ", match.group("relation").lower())
    relation = {"prior to": "before", "following": "after"}.get(relation, relation)
    owner = match.group("owner")
    words = match.group("words")
    event = f"{owner[:-2]} {words}" if owner.lower().endswith("'s") else words
    if not _stems(event):
        return None
    # The window stands for the event as it stands for a date: the rest of the question orders what is in it.
    before, after = query[: match.start()], query[match.end() :]
    question = re.sub(r"\s+", " ", f"{before} {after}").strip()
    missing = [
        w for w in _WORD.findall(event) if w.lower() not in STOPWORDS and _root(w.lower()) not in _stems(f"{before} {after}")
    ]
    rest = re.sub(r"\s+", " ", " ".join([before, *missing, after])).strip()
    return EventPhrase(relation, match.group(0).strip(), event, rest, question)


def event_window(
    phrase: EventPhrase, find: Callable[[str, int], list[SearchHit]], now: datetime
) -> tuple[TimeWindow, SearchHit] | None:
    """The window ``phrase`` names and the memory of its event, or None when no memory is the event.

    ``find(words, limit)`` returns the cube's best matches for ``words``: the whole question (less the
    relation word), so that "after the demo" asked about a customer finds the demo for that customer.
    """
    wanted = _stems(phrase.event)
    head = re.escape(phrase.event.split()[-1])
    around = re.compile(
        rf"\b(?:before|after|since|prior\s+to|following|until|till|ahead\s+of|for)\s+(?:\S+\s+){{0,3}}?{head}\b", re.I
    )
    for hit in find(phrase.rest, ANCHOR_POOL):
        if hit.occurred_at is None or not wanted <= _stems(hit.text) or around.search(hit.text):
            continue
        moment = datetime.fromisoformat(hit.occurred_at.replace("Z", "+00:00")).astimezone(UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if phrase.relation == "before":
            since, until = day - EVENT_REACH, day + timedelta(days=1, seconds=-1)
        else:  # "after" and "since"
            since, until = day, max(moment, now.astimezone(UTC))
        return TimeWindow(expression=phrase.expression, since=to_stored(since), until=to_stored(until)), hit
    return None


def event_behind_topic(hits: list[SearchHit], phrase: EventPhrase, event: SearchHit) -> list[SearchHit]:
    """``hits`` with the event's own memory behind those that share a topic word with the question, when it shares none.

    The event's day is in the window because what followed is often told with it ("the accident
    shook me"); a memory that only names the event does not say what was ordered after it.
    """
    topic = _stems(topic_query(phrase.question)) - _stems(phrase.event)
    if not topic or topic & _stems(event.text):
        return hits
    on_topic = [h for h in hits if h.id != event.id and topic & _stems(h.text)]
    if not on_topic:
        return hits
    rest = [h for h in hits if h.id != event.id and h not in on_topic]
    return on_topic + [h for h in hits if h.id == event.id] + rest


def _stems(text: str) -> set[str]:
    """Content words as roots, so that "meetings", "meeting" and "meet", or "moved" and "move", compare equal."""
    return {_root(w.lower()) for w in _WORD.findall(text) if w.lower() not in STOPWORDS and not w.isdigit()}


def _root(word: str) -> str:
    for _ in range(2):  # "meetings" -> "meeting" -> "meet"
        for suffix in ("ing", "ies", "ied", "ed", "es", "s", "'s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
    return word.removesuffix("e") if len(word) > 3 else word  # "move" and "moved" alike
