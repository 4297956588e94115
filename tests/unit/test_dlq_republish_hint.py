"""``psmesh dlq list`` ends with the ``psmesh processors republish`` that sends what a sink refused again: naming
the projects and resources of the sinks' letters where it can, the whole command where it cannot (psmesh/dlq.py,
``Republish``). The letters of the command's output: tests/integration/test_sinks.py."""

from __future__ import annotations

import json

from psmesh.dlq import Republish


class _JsonDecoder:
    """Originals as JSON (the command's decoder reads Avro through the registry first)."""

    def original(self, data: bytes | None):
        return None if data is None else json.loads(data)


def _hint(*letters: tuple) -> str | None:
    """The hint after ``letters``: (stage, original key, original value[, origin topic]) each."""
    republish = Republish()
    for stage, key, value, *topic in letters:
        record = {"stage": stage, "topic": topic[0] if topic else "derived.billing_triggers",
                  "key": None if key is None else json.dumps(key).encode(),
                  "value": None if value is None else json.dumps(value).encode()}
        republish.add(_JsonDecoder(), record)
    return republish.hint()


def test_letters_of_projects_and_resources_name_them_each_once():
    hint = _hint(("erp_sink", {"billing_event_id": "PRJ-2-M1"}, {"project_code": "PRJ-2"}),
                 ("erp_sink", {"billing_event_id": "PRJ-2-M2"}, {"project_code": "PRJ-2"}),
                 ("reporting_sink", {"project_code": "PRJ-7"}, None),
                 ("reporting_sink", {"resource_id": 12, "week_start": 20514}, {"resource_id": 12}))
    assert hint == ("once the sink's target is fixed, `psmesh processors republish --project PRJ-2 --project PRJ-7 "
                    "--resource 12` sends the refused view rows and derived events again (the sinks keep what they "
                    "have); then `psmesh dlq ack`")


def test_rows_of_the_rollup_views_ask_for_the_rollup_stage():
    skill_week = ("reporting_sink", {"skill": "aws", "week_start": 20514}, None, "views.skill_week")
    assert _hint(skill_week, ("reporting_sink", {"service_line": "cloud", "won_month": "2026-01"}, None,
                              "views.bookings")) == (
        "once the sink's target is fixed, `psmesh processors republish --stage rollup` sends the refused view rows "
        "and derived events again (the sinks keep what they have); then `psmesh dlq ack`")
    # --stage and --project are one request or the other (the command refuses both): two commands
    assert _hint(("erp_sink", None, {"project_code": "PRJ-2"}), skill_week) == (
        "once the sink's target is fixed, `psmesh processors republish --project PRJ-2` and `psmesh processors "
        "republish --stage rollup` send the refused view rows and derived events again (the sinks keep what they "
        "have); then `psmesh dlq ack`")


def test_a_letter_that_names_nothing_or_too_many_asks_for_everything():
    assert "`psmesh processors republish` sends" in _hint(
        ("reporting_sink", {"skill": "aws", "week_start": 20514}, None, "views.skill_week"),
        ("reporting_sink", None, None),  # an unreadable record: its original bytes could not be decoded
        ("erp_sink", None, {"project_code": "PRJ-2"}))
    many = [("erp_sink", None, {"project_code": f"PRJ-{i}"}) for i in range(Republish.MOST + 1)]
    assert "`psmesh processors republish` sends" in _hint(*many)
    assert "--project PRJ-9`" in _hint(*many[:Republish.MOST])


def test_letters_of_the_processor_stages_need_no_republish():
    assert _hint(("project", {"entry_id": 1}, {"project_code": "PRJ-2"})) is None
    assert _hint() is None


def test_a_sink_s_letter_of_a_change_topic_asks_for_the_row_s_next_version_not_a_republish():
    """The reporting sink mirrors some source tables: no republish sends their change events again."""
    project = ("reporting_sink", {"project_code": "PRJ-7"},
               {"before": None, "after": {"project_code": "PRJ-7"}, "op": "u"}, "erp.public.projects")
    hint = _hint(project)
    assert "republish" not in hint
    assert hint.startswith("a sink's letter of a change topic comes again only with its row's next version: once "
                           "the target is fixed, update the row in its source database")
    both = _hint(project, ("erp_sink", None, {"project_code": "PRJ-2"})).splitlines()
    assert len(both) == 2 and "`psmesh processors republish --project PRJ-2` sends" in both[0]
    assert both[1].startswith("a sink's letter of a change topic")


def test_a_capture_s_letter_asks_for_the_row_to_be_corrected_at_its_source_and_shows_its_lsn():
    from psmesh.dlq import Letter

    hint = _hint(("capture_psa", None, {"table": "public.assignments", "op": "u"}, "psa.public.assignments"))
    assert hint.startswith("a capture's letter is a row whose value has no Avro form")
    assert "correct the row in its source database" in hint and "republish" not in hint
    letter = Letter("dlq.capture", 0, 7, {"topic": "psa.public.assignments", "partition": -1, "offset": 0x16B3730})
    assert letter.origin == "psa.public.assignments@LSN 0/16B3730"
    assert Letter("dlq.capture", 0, 8, {"topic": "psa.public.assignments", "partition": -1, "offset": -1}).origin == (
        "psa.public.assignments@snapshot")
