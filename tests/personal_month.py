"""A month of generated personal memories for the structured-recall tests (issue 15).

Goals, tasks with due dates and states (some for the launch goal), meetings, preferences,
and people named in full and by first name. ``NOW`` is the reference time: Wednesday
2026-03-18. Each task is keyed, so a test names the ones a question must find.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

NOW = "2026-03-18T10:00:00Z"  # a Wednesday; "next week" is 2026-03-23 .. 2026-03-29
TODAY = date(2026, 3, 18)

GOALS = {
    "launch": "Goal: launch the Aurora mobile app to the public by the end of April",
    "marathon": "Goal: run a half marathon in under two hours this spring",
}

# key: (text, state, due date offset in days from TODAY or None, goal key or None)
TASKS: dict[str, tuple[str, str, int | None, str | None]] = {
    "store_listing": ("Write the app store listing copy and screenshots", "todo", -3, "launch"),
    "beta_feedback": ("Triage the beta testers' crash reports", "in_progress", -1, "launch"),
    "press_kit": ("Prepare the press kit for the launch announcement", "todo", 6, "launch"),
    "pricing_page": ("Finish the pricing page on the website", "blocked", 9, "launch"),
    "privacy_review": ("Get the privacy policy reviewed by legal", "done", -5, "launch"),
    "running_shoes": ("Buy new running shoes", "todo", 8, "marathon"),
    "long_run": ("Do an 18 km long run on Sunday", "done", -4, "marathon"),
    "dentist": ("Book a dentist appointment", "todo", -7, None),
    "tax_return": ("File the tax return", "todo", 12, None),
    "car_service": ("Take the car in for its annual service", "todo", 20, None),
    "birthday_gift": ("Order a birthday gift for Mum", "done", -2, None),
    "plants": ("Repot the balcony plants", "in_progress", None, None),
}

OTHER: list[dict[str, Any]] = [
    {"text": "Marco Bianchi leads the backend team at Aurora", "type": "fact"},
    {"text": "Priya Raman is the designer for the Aurora app", "type": "fact"},
    {"text": "Marco prefers code reviews in the morning", "type": "preference", "subject": "code review time"},
    {"text": "Priya suggested a darker colour palette for the onboarding screens", "type": "note"},
    {"text": "I prefer tea to coffee in the afternoon", "type": "preference", "subject": "afternoon drink"},
    {"text": "I like to swim on Saturday mornings", "type": "preference"},
    {"text": "Lunch with my sister Anna at the Italian place", "type": "event"},
    {"text": "Note: the office wifi password changes every month", "type": "note"},
    {"text": "Read a book about the history of Venice", "type": "note"},
    {"text": "The landlord will fix the heating next month", "type": "note"},
]

MEETINGS = [
    "Weekly sync with Marco about the release checklist",
    "Design review with Priya on the new icons",
    "Standup: the team agreed to freeze features two weeks before launch",
    "One-to-one with my manager about the Q2 roadmap",
]


def memories() -> tuple[list[dict[str, Any]], list[str]]:
    """Goals first (their ids are needed for the tasks' parent_id), then the rest: (items, keys)."""
    items: list[dict[str, Any]] = []
    keys: list[str] = []
    for key, text in GOALS.items():
        items.append({"text": text, "type": "goal", "occurred_at": str(TODAY - timedelta(days=25))})
        keys.append(f"goal:{key}")
    return items, keys


def tasks_for(goal_ids: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    items: list[dict[str, Any]] = []
    keys: list[str] = []
    for key, (text, state, due, goal) in TASKS.items():
        item: dict[str, Any] = {"text": text, "type": "task", "state": state}
        if due is not None:
            item["due_at"] = f"{TODAY + timedelta(days=due)}T17:00:00Z"
        if goal is not None:
            item["parent_id"] = goal_ids[goal]
        items.append(item)
        keys.append(key)
    for week in range(4):  # a month of meetings, one a week
        for offset, text in enumerate(MEETINGS):
            day = TODAY - timedelta(days=28 - week * 7 - offset)
            items.append({"text": f"{text} (week {week + 1})", "type": "event", "occurred_at": str(day)})
            keys.append(f"meeting:{week}:{offset}")
    for other in OTHER:
        items.append(dict(other))
        keys.append("other")
    return items, keys


def expected_overdue() -> set[str]:
    return {k for k, (_, state, due, _) in TASKS.items() if due is not None and due < 0 and state != "done"}


def expected_due_next_week() -> set[str]:
    # Next week: Monday 2026-03-23 (offset 5) to Sunday 2026-03-29 (offset 11); open tasks only.
    return {k for k, (_, state, due, _) in TASKS.items() if due is not None and 5 <= due <= 11 and state != "done"}


def expected_open_for_launch() -> set[str]:
    return {k for k, (_, state, _, goal) in TASKS.items() if goal == "launch" and state != "done"}


def load(cube: Any) -> dict[str, str]:
    """Add the month to a ``MemCube``; return key -> memory id."""
    goal_items, goal_keys = memories()
    goal_ids = {k.split(":", 1)[1]: o.id for k, o in zip(goal_keys, cube.add(goal_items), strict=True)}
    items, keys = tasks_for(goal_ids)
    ids = {f"goal:{k}": v for k, v in goal_ids.items()}
    for key, outcome in zip(keys, cube.add(items), strict=True):
        if key != "other":
            ids[key] = outcome.id
    return ids
