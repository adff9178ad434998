"""Loading a container-status feed: events in, the store filled, every rejection kept with its reasons."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .container_store import ContainerEventStore
from .domain.container_events import normalize


@dataclass
class LoadSummary:
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    unchecked_container_ids: int = 0  # loaded, but the container id fails ISO 6346: a data-quality fact

    @property
    def balanced(self) -> bool:
        return self.read == self.loaded + self.duplicates + sum(self.rejected.values())


def load_events(items: Iterable[tuple[str, Any]], checker, store: ContainerEventStore,
                on_rejected: Callable[[str, Any, list], None], batch_size: int = 500,
                on_progress: Callable[[int], None] | None = None) -> LoadSummary:
    """items: (where it came from, the parsed event, or a connectors.dcsa.JsonError)."""
    summary, batch = LoadSummary(), []

    def flush():
        stored = store.add(batch)
        new = sum(stored)
        summary.loaded += new
        summary.duplicates += len(stored) - new
        summary.unchecked_container_ids += sum(1 for e, s in zip(batch, stored) if s and e.equipment_check_digit_ok is False)
        batch.clear()
        if on_progress:
            on_progress(summary.read)

    for where, event in items:
        summary.read += 1
        problems = ([("/", "json", str(event))] if isinstance(event, str) else checker.problems(event))
        if not problems:
            try:
                batch.append(normalize(event))
            except (ValueError, KeyError) as exc:  # e.g. a date-time the schema lets through but Python cannot read
                problems = [("/", "normalize", f"{type(exc).__name__}: {exc}")]
        if problems:
            for path, kind, _ in problems[:1]:
                summary.rejected[f"{path} ({kind})"] += 1
            on_rejected(where, event, problems)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary


def rejected_record(where: str, event: Any, problems: list) -> str:
    return json.dumps({"source": where, "reasons": [f"{p}: {m}" for p, _, m in problems], "event": event},
                      ensure_ascii=False, default=str)
