"""Time as a strong preference, not a wall: how a search uses the window its time words name.

``memory.retrieval.time_words`` reads "last week" or "the last retro" into a ``TimeWindow``;
the query plan (``memory.retrieval.planning``) first searches inside it. This module judges that result and, when the
window holds nothing relevant, brings the best memories just outside it, marked
``outside_window``: a slightly wrong reading of the time ("last week" for a meeting nine
days ago) costs rank, not the answer.

- A window holds something relevant when one of its hits passes the relevance floor
  (``memory.retrieval.relevance``) or shares a word or an entity with the query, or when the
  rest of the query names no topic at all ("what happened yesterday": the time is the whole
  question), or when nothing outside it
  passes the floor with the best inside under ``OUTSIDE_RATIO`` of its strength (a short
  query like "calls" matches everything weakly: of two calls alike, the window still decides).
- Outside it, a hit's fused score is halved for every half-life of distance from the window
  (the half-life is the window's own length, at least a week, or the nearest relevant hit's
  distance when that is more): of two equally good matches the nearer comes first, and a much
  better match further away still beats a weak near one.
- "the last X" puts the best matches (those sharing the most topic words with the query)
  newest first: a recency ranking among the relevant ones, not a window.
- Inside a window the rest of the question decides the order: the search runs on its topic
  words (``topic_query``: no time words, no "go", "do", "say" that every memory of the window
  answers), and in a window already past what happened comes before a task only due in it
  (``happened_first``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from memory.models import SearchHit, TimeWindow
from memory.retrieval.relevance import FLOOR, strength
from memory.stopwords import STOPWORDS

MIN_HALF_LIFE_DAYS = 7.0
LATEST_POOL = 10
LATEST_MARGIN = 0.08
# The window gives way only when its best hit is under this share of the best hit outside it.
OUTSIDE_RATIO = 0.6
# How far a task only due in a past window falls behind the memories that happened in it.
DUE_ONLY_PENALTY = 0.2
# Words that ask about time without naming a topic: "what happened", "what did I do", "anything".
_NO_TOPIC = frozenset(
    [
        "happen",
        "happened",
        "happening",
        "go",
        "went",
        "going",
        "gone",
        "do",
        "done",
        "doing",
        "anything",
        "something",
        "everything",
        "stuff",
        "things",
        "thing",
        "events",
        "event",
        "memories",
        "memory",
        "notes",
        "note",
        "up",
        "new",
        # Saying is how most memories came to be ("Ingrid says...", "Keiko told me..."): "what
        # did the dentist say in the summer" asks about the dentist, not about a saying.
        "say",
        "says",
        "said",
        "tell",
        "tells",
        "told",
    ]
)
_WORD_SIGNALS = ("keyword", "context", "entity", "exact")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def names_no_topic(text: str) -> bool:
    """True when ``text`` (a query less its time words) asks about nothing but the time."""
    return not [w for w in (w.lower() for w in _WORD.findall(text)) if w not in STOPWORDS and w not in _NO_TOPIC]


def topic_query(text: str) -> str:
    """``text`` (a query less its time words) without the words that ask about happening, when a topic is left.

    Inside a time window every memory happened: "which concert did I go to in September"
    asks for the September memory about a concert, and "go" would match any memory that
    says "go ahead" just as well. ``text`` is returned as it is when those words are all it
    names ("what did I do yesterday": the window decides).
    """
    if names_no_topic(text):
        return text
    kept = re.sub(r"[^\W_]+", lambda m: "" if m.group(0).lower() in _NO_TOPIC else m.group(0), text)
    return re.sub(r"\s+", " ", kept).strip()


def happened_first(hits: Sequence[SearchHit], window: TimeWindow, now: datetime) -> list[SearchHit]:
    """The hits of a window that has ended, those that happened in it ahead of tasks only due in it.

    A window matches a memory that happened in it or (a task) falls due in it. Asked about
    a time already past ("what did we decide about the budget last week?"), what happened
    then answers; a task due then is a plan written at another time, so it gives way to a
    memory that happened there and scores nearly as well (``DUE_ONLY_PENALTY``). Future and
    running windows keep their order: there, what falls due is what is asked.
    """
    if window.until is None or _moment(window.until) >= now.astimezone(UTC):
        return list(hits)
    return sorted(hits, key=lambda h: -(h.score - (DUE_ONLY_PENALTY if h.occurred_at is None and h.due_at else 0.0)))


def _relevant(hit: SearchHit) -> bool:
    value = strength(hit)
    return value is None or value >= FLOOR


def holds_relevant(hits: Sequence[SearchHit]) -> bool:
    """Whether any hit is on the query's topic: over the relevance floor, or sharing a word or an entity with it.

    Inside a window a shared word is enough: the time already narrowed the memories down, and
    a short query ("list today's meetings", "calls yesterday") has a low strength everywhere.
    """
    return any(_relevant(h) or any(s in h.signals for s in _WORD_SIGNALS) for h in hits)


def best_strength(hits: Sequence[SearchHit]) -> float:
    """The strongest hit's strength (0 when none has one)."""
    return max((v for v in (strength(h) for h in hits) if v is not None), default=0.0)


def better_outside(inside: Sequence[SearchHit], everywhere: Sequence[SearchHit]) -> bool:
    """Whether a search without the window finds something relevant clearly stronger than the window's best."""
    best = best_strength(everywhere)
    return best >= FLOOR and best_strength(inside) < OUTSIDE_RATIO * best


def _moment(stored: str) -> datetime:
    return datetime.fromisoformat(stored.replace("Z", "+00:00"))


def _days_outside(hit: SearchHit, since: datetime | None, until: datetime | None) -> float | None:
    """0 inside the window, else days from its nearer edge; None for a memory with no date."""
    when_text = hit.occurred_at or hit.due_at
    if when_text is None:
        return None
    when = _moment(when_text)
    if since is not None and when < since:
        return (since - when).total_seconds() / 86400
    if until is not None and when > until:
        return (when - until).total_seconds() / 86400
    return 0.0


def nearest_outside(hits: Sequence[SearchHit], window: TimeWindow, limit: int) -> list[SearchHit]:
    """Hits of a search run without ``window``, marked when outside it, nearest relevant ones first.

    The relevant hits (over the floor) come first, ordered by fused score halved per half-life of
    distance beyond the nearest relevant one's (a memory without a date counts one half-life
    away); then the rest in their order. ``limit`` cuts the list.
    """
    since = _moment(window.since) if window.since else None
    until = _moment(window.until) if window.until else None
    half_life = MIN_HALF_LIFE_DAYS
    if since is not None and until is not None:
        half_life = max(half_life, (until - since).total_seconds() / 86400)
    distances = {hit.id: _days_outside(hit, since, until) for hit in hits}
    for hit in hits:
        hit.outside_window = distances[hit.id] != 0.0
    relevant = [hit for hit in hits if _relevant(hit)]
    # Closeness is relative: when even the nearest relevant memory is far (a year-old cube asked
    # about "last week"), months between the others matter little and relevance decides.
    nearest = min((d for h in relevant if (d := distances[h.id]) is not None), default=0.0)
    half_life = max(half_life, nearest)
    keyed: list[tuple[float, SearchHit]] = []
    for hit in relevant:
        days = distances[hit.id]
        distance = half_life if days is None else max(0.0, days - nearest)
        keyed.append((hit.score * 0.5 ** (distance / half_life), hit))
    rest = [hit for hit in hits if not _relevant(hit)]
    keyed.sort(key=lambda pair: -pair[0])
    return ([hit for _, hit in keyed] + rest)[:limit]


def _stems(text: str) -> set[str]:
    """A text's topic words, cut to their first five letters ("agreed" and "agree", "retros" and "retro" alike)."""
    return {w[:5] for w in (w.lower() for w in _WORD.findall(text)) if w not in STOPWORDS and w not in _NO_TOPIC}


def most_recent_first(hits: Sequence[SearchHit], query: str, subject: str = "") -> list[SearchHit]:
    """ "The last X": the relevant best matches newest first, then the rest in rank order.

    The relevant ones are the dated hits among the first ``LATEST_POOL`` that share the most
    words with ``subject`` (X, "retro" in "the last retro"), else with ``query`` (the query
    less its time words); when none shares any, those whose meaning is as close to the query
    as the closest one's (cosine within ``LATEST_MARGIN``). Reordering rather than filtering
    keeps the other occasions within reach when "last" meant something else.
    """
    dated = [h for h in hits[:LATEST_POOL] if h.occurred_at]
    if not dated:
        return list(hits)
    most = 0
    for words in (subject, query):
        wanted = _stems(words)
        shared = {h.id: len(wanted & _stems(h.text)) for h in dated}
        most = max(shared.values())
        if most > 0:
            break
    if most > 0:
        anchors = [h for h in dated if shared[h.id] == most]
    else:
        cosine = {h.id: h.signals["vector"].score for h in dated if "vector" in h.signals}
        best = max(cosine.values(), default=None)
        anchors = [h for h in dated if best is not None and cosine.get(h.id, -1.0) >= best - LATEST_MARGIN] or dated[:1]
    anchors.sort(key=lambda h: h.occurred_at or "", reverse=True)
    return anchors + [h for h in hits if h not in anchors]
