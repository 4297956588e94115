"""The firm's status rules: forward-only pipeline, final closed stages, timesheet flow."""

import pytest

from psmesh.firm.exceptions import IllegalTransition
from psmesh.firm.model import STAGE_TRANSITIONS, Stage, TimeStatus, check_stage, check_status, check_time_status, next_open_stage

OPEN = [Stage.PROSPECTING, Stage.QUALIFICATION, Stage.PROPOSAL, Stage.NEGOTIATION]


def test_open_stages_advance_one_step_in_order():
    assert [next_open_stage(s) for s in OPEN] == [Stage.QUALIFICATION, Stage.PROPOSAL, Stage.NEGOTIATION, Stage.CLOSED_WON]


@pytest.mark.parametrize("stage", OPEN)
def test_any_open_stage_can_be_lost(stage):
    assert check_stage(stage, "closed_lost") is Stage.CLOSED_LOST


@pytest.mark.parametrize("closed", [Stage.CLOSED_WON, Stage.CLOSED_LOST])
@pytest.mark.parametrize("target", list(Stage))
def test_closed_stages_are_final(closed, target):
    with pytest.raises(IllegalTransition):
        check_stage(closed, target)


@pytest.mark.parametrize("current,new", [("qualification", "prospecting"), ("prospecting", "proposal"), ("proposal", "closed_won"), ("negotiation", "negotiation")])
def test_stages_never_skip_or_go_back(current, new):
    with pytest.raises(IllegalTransition):
        check_stage(current, new)


def test_only_negotiation_reaches_closed_won():
    assert [s for s, nxt in STAGE_TRANSITIONS.items() if Stage.CLOSED_WON in nxt] == [Stage.NEGOTIATION]


def test_time_entry_goes_draft_submitted_then_approved_or_rejected():
    assert check_time_status("draft", "submitted") is TimeStatus.SUBMITTED
    assert check_time_status("submitted", "approved") is TimeStatus.APPROVED
    assert check_time_status("submitted", "rejected") is TimeStatus.REJECTED


@pytest.mark.parametrize("current,new", [("draft", "approved"), ("approved", "draft"), ("rejected", "submitted"), ("approved", "rejected")])
def test_time_entry_never_skips_submission_nor_leaves_a_final_status(current, new):
    with pytest.raises(IllegalTransition):
        check_time_status(current, new)


def test_billing_milestone_moves_planned_to_completed_only():
    assert check_status("billing_milestones", "planned", "completed") == "completed"
    with pytest.raises(IllegalTransition):
        check_status("billing_milestones", "completed", "planned")
    with pytest.raises(IllegalTransition):
        check_status("billing_periods", "closed", "open")
