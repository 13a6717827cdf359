"""A cut-short or hand-edited journal is refused with the line and column to fix, never reset.

The journal is what stops `up` from launching every node again: a journal that cannot be read
must stop the run with one located line (exit 3), not start afresh and not end in a traceback.
"""

import json
import time

import pytest

from drbootstrap import journal_reader
from drbootstrap.exit_status import ExitStatus
from drbootstrap.journal import Journal, JournalError, Step
from drbootstrap.paths import EnvironmentPaths


def written_journal(tmp_path) -> str:
    """A journal as `up` writes it: one node launched, booting."""
    journal = Journal.open(tmp_path, "prod")
    journal.node("db01", role="db")
    journal.update_node("db01", provider_id="i-1", client_token="tok-0", address="10.0.0.5")
    journal.start_step("db01", Step.LAUNCH)
    journal.finish_step("db01", Step.LAUNCH, detail="launched")
    journal.start_step("db01", Step.BOOT)
    return EnvironmentPaths(tmp_path, "prod").journal.read_text()


def refusal(tmp_path, text: str) -> str:
    path = EnvironmentPaths(tmp_path, "prod").journal
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(JournalError) as caught:
        Journal.open(tmp_path, "prod")
    assert caught.value.exit_status == ExitStatus.INVALID_SPEC
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    assert path.read_text() == text  # never rewritten, never reset
    return message.removeprefix(f"{path}:")


def line_and_column_of(text: str, needle: str) -> str:
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    return f"{line}:{index - (text.rfind(chr(10), 0, index) + 1) + 1}"


def test_a_journal_written_by_up_reads_back(tmp_path):
    written_journal(tmp_path)
    node = Journal.open(tmp_path, "prod").data.nodes["db01"]
    assert node.provider_id == "i-1" and node.is_done(Step.LAUNCH) and not node.is_done(Step.BOOT)


def test_a_journal_cut_short_says_so_at_its_end(tmp_path):
    text = written_journal(tmp_path)
    cut = text[: len(text) // 2]
    message = refusal(tmp_path, cut)
    assert "the journal ends in the middle (the file was cut short: restore it from a backup)" in message


def test_bad_json_is_located(tmp_path):
    text = written_journal(tmp_path).replace('"role": "db"', '"role" "db"')
    assert refusal(tmp_path, text).startswith(line_and_column_of(text, '"role" "db"').split(":")[0])
    assert "not valid JSON: Expecting ':' delimiter" in refusal(tmp_path, text)


def test_a_wrong_type_is_located_at_its_value(tmp_path):
    text = written_journal(tmp_path).replace('"generation": 0', '"generation": "zero"')
    assert refusal(tmp_path, text) == (
        f"{line_and_column_of(text, chr(34) + 'zero')}: nodes.db01.generation: must be a whole number, "
        '0 or more, got "zero" (or restore the journal from a backup)'
    )


def test_an_unknown_step_name_is_located_at_its_key(tmp_path):
    text = written_journal(tmp_path).replace('"boot":', '"reboot_twice":')
    assert refusal(tmp_path, text).startswith(
        f"{line_and_column_of(text, chr(34) + 'reboot_twice')}: nodes.db01.steps: unknown name \"reboot_twice\" "
        "(names here: launch, register_name, boot,"
    )


def test_an_unknown_step_state_is_refused(tmp_path):
    text = written_journal(tmp_path).replace('"state": "running"', '"state": "sleeping"')
    assert 'nodes.db01.steps.boot.state: "sleeping" is not one of running, done, failed' in refusal(tmp_path, text)


@pytest.mark.parametrize("bad_time", ["-5", "NaN", "Infinity", "-Infinity", "true", "\"yesterday\"", "1" * 40])
def test_negative_or_non_finite_times_are_refused(tmp_path, bad_time):
    text = written_journal(tmp_path)
    started = json.loads(text)["nodes"]["db01"]["steps"]["boot"]["started_at"]
    text = text.replace(json.dumps(started), bad_time, 1)
    message = refusal(tmp_path, text)
    assert ": must be a number of seconds, 0 or more, got " in message
    assert message.startswith(line_and_column_of(text, bad_time))


def test_an_unknown_field_is_refused_with_the_known_ones(tmp_path):
    text = written_journal(tmp_path).replace('"role": "db"', '"role": "db", "colour": "red"')
    message = refusal(tmp_path, text)
    assert message.startswith(f"{line_and_column_of(text, chr(34) + 'colour')}: nodes.db01.colour: unknown field")
    assert "fields here: hostname, role," in message


def test_a_missing_required_field_is_refused(tmp_path):
    raw = json.loads(written_journal(tmp_path))
    del raw["environment"]
    assert "the journal: missing field 'environment'" in refusal(tmp_path, json.dumps(raw))


@pytest.mark.parametrize("text", ["[]", "null", "42", '"a journal"'])
def test_a_journal_that_is_not_an_object_is_refused(tmp_path, text):
    assert refusal(tmp_path, text) == "1:1: the journal must be a JSON object (restore the journal from a backup)"


def test_nodes_of_the_wrong_shape_are_refused(tmp_path):
    raw = json.loads(written_journal(tmp_path))
    raw["nodes"]["db01"]["steps"] = ["launch"]
    assert "nodes.db01.steps: must be an object {...}, got a list" in refusal(tmp_path, json.dumps(raw))


def test_a_node_the_spec_does_not_name_is_kept(tmp_path):
    raw = json.loads(written_journal(tmp_path))
    raw["nodes"]["old01"] = {**raw["nodes"]["db01"], "hostname": "old01"}
    path = EnvironmentPaths(tmp_path, "prod").journal
    path.write_text(json.dumps(raw))
    assert set(Journal.open(tmp_path, "prod").data.nodes) == {"db01", "old01"}


def test_an_empty_journal_file_is_refused_not_reset(tmp_path):
    assert "the journal ends in the middle" in refusal(tmp_path, "")


def test_deep_nesting_is_refused_at_the_level_too_deep(tmp_path):
    text = '{"version": 1, "environment": "prod", "nodes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert refusal(tmp_path, text) == (
        f"1:{48 + journal_reader.MAX_JOURNAL_DEPTH - 1}: the journal nests deeper than "
        f"{journal_reader.MAX_JOURNAL_DEPTH} levels (it is not a journal this tool wrote: "
        "or restore the journal from a backup)"
    )


def test_a_journal_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_reader, "MAX_JOURNAL_BYTES", 4096)
    text = written_journal(tmp_path).replace('"detail": "launched"', '"detail": "' + "x" * 5000 + '"')
    started = time.monotonic()
    assert refusal(tmp_path, text).startswith("1:1: the journal is more than 4096 bytes")
    assert time.monotonic() - started < 1


def test_non_utf8_bytes_are_located(tmp_path):
    path = EnvironmentPaths(tmp_path, "prod").journal
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"version": 1,\n "environment": "pr\xffod"}')
    with pytest.raises(JournalError, match=r":2:20: not UTF-8 text \(byte 0xff\)"):
        Journal.open(tmp_path, "prod")


def test_a_journal_from_another_version_is_located_at_its_version(tmp_path):
    text = written_journal(tmp_path).replace('"version": 1', '"version": 7')
    line, column = line_and_column_of(text, '"version": 7').split(":")
    assert refusal(tmp_path, text).startswith(f"{line}:{int(column) + 11}: journal version 7 is not 1")


def test_the_cli_reports_a_bad_journal_as_one_line_with_exit_3(tmp_path, cli, monkeypatch):
    spec = tmp_path / "env.yaml"
    spec.write_text("environment: prod\ndomain: demo.internal\nprovider: {name: local}\nnodes:\n"
                    "  - role: db\n    hostnames: [db01]\n")
    path = EnvironmentPaths(tmp_path / "state", "prod").journal
    path.parent.mkdir(parents=True)
    text = '{"version": 1, "environment": "prod", "nodes": {"db01": 7}}'
    path.write_text(text)
    result = cli("status", str(spec), "--state-dir", str(tmp_path / "state"), "--no-ping")
    assert result.exit_code == ExitStatus.INVALID_SPEC, result.stderr
    assert (
        result.stderr
        == f"{path}:{line_and_column_of(text, '7}')}: nodes.db01: must be an object {{...}}, got 7 "
        "(or restore the journal from a backup)\n"
    )


def test_a_key_with_a_control_character_is_shown_escaped_on_one_line(tmp_path):
    raw = json.loads(written_journal(tmp_path))
    raw["\r"] = raw.pop("created_at")
    message = refusal(tmp_path, json.dumps(raw))
    assert '"\\r": unknown field (fields here: environment,' in message
