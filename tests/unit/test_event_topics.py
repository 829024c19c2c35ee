"""The frozen topic table: events keep the topic, and so the NATS subject, they
were first stored under, wherever their class lives now."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eventsourcing.utils import resolve_topic

from domain.catalogue import event_catalogue
from infrastructure.messaging import subject_for
from infrastructure.topics import (
    STORED_TOPICS,
    UnknownEventTopic,
    event_classes_by_topic,
    topic_of,
)

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "event_topics.json").read_text())
CATALOGUE = event_catalogue()


def test_every_event_class_has_a_frozen_topic() -> None:
    missing = [
        f'"{event.__name__}": "{event.__module__}:{event.__qualname__}"'
        for event in CATALOGUE
        if event.__name__ not in STORED_TOPICS
    ]
    assert not missing, (
        "event classes without a stored topic; add to STORED_TOPICS in "
        "infrastructure/topics.py:\n    " + ",\n    ".join(missing)
    )


def test_no_entry_names_a_class_that_does_not_exist() -> None:
    names = {event.__name__ for event in CATALOGUE}
    assert set(STORED_TOPICS) <= names, sorted(set(STORED_TOPICS) - names)


@pytest.mark.parametrize("event", CATALOGUE, ids=lambda event: event.__name__)
def test_a_stored_topic_and_its_subject_never_change(event: type) -> None:
    golden = GOLDEN.get(event.__name__)
    if golden is None:
        pytest.skip(f"{event.__name__} is newer than the golden file")
    assert topic_of(event) == golden["topic"]
    assert subject_for(topic_of(event)) == golden["subject"]


@pytest.mark.parametrize("event", CATALOGUE, ids=lambda event: event.__name__)
def test_a_stored_topic_resolves_back_to_its_class(event: type) -> None:
    topic = topic_of(event)
    assert event_classes_by_topic()[topic] is event
    assert resolve_topic(topic) is event


def test_an_event_class_outside_the_table_is_refused_with_what_to_add() -> None:
    class PackageRepriced:  # not an event billrun stores
        pass

    with pytest.raises(UnknownEventTopic, match=r'add "PackageRepriced": ".*PackageRepriced"'):
        topic_of(PackageRepriced)
