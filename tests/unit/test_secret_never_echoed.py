"""The CLI's error output for a bad credential never contains the secret, whatever went wrong.

Each case writes the secret where a person might by mistake (a literal, a list, a mapping, a
number, a driver option, a file that is too big or not a file) next to another error, and
checks the whole of stdout and stderr of `validate`, `plan` and `up` for it.
"""

import os

import pytest

from drbootstrap.exit_status import ExitStatus

SECRET = "s3cr3t-Hunter2-value-9f8e7d"
NUMERIC_SECRET = 918273645546372819
HEAD = "environment: demo\ndomain: demo.internal\n"
NODES = "nodes:\n  - role: db\n    hostnames: [db01]\n  - role: Bad_Role\n    hostnames: [web01]\n"
CASES = {
    "literal credential": f"provider:\n  name: ec2\n  credentials:\n    secret: {SECRET}\n",
    "literal psk": f"provider: {{name: local}}\nsecurity:\n  psk: {SECRET}\n",
    "numeric psk": f"provider: {{name: local}}\nsecurity:\n  psk: {NUMERIC_SECRET}\n",
    "credential in a list": f"provider:\n  name: ec2\n  credentials:\n    secret: [{SECRET}]\n",
    "credential in a mapping": f"provider:\n  name: ec2\n  credentials:\n    secret: {{value: {SECRET}}}\n",
    "credentials not a mapping": f"provider:\n  name: ec2\n  credentials: {SECRET}\n",
    "literal tsig secret": (
        "provider: {name: local}\nmaster:\n  dynamic_dns:\n    server: 10.0.0.1\n    zone: demo.internal\n"
        f"    tsig_key_name: key1\n    tsig_secret: {SECRET}\n"
    ),
    "secret in a driver option": f"provider:\n  name: local\n  extra:\n    api_key: {SECRET}\n",
    "secret in a nested driver option": f"provider:\n  name: local\n  extra:\n    api_key: {{x: {SECRET}}}\n",
    "public dns literal": (
        "provider: {name: local}\npublic_dns:\n  provider: route53\n  zone: demo.example\n"
        f"  credentials:\n    secret: {SECRET}\n"
    ),
    "env reference resolved, other errors": (
        "provider:\n  name: ec2\n  credentials:\n    secret: ${env:DRB_TEST_SECRET}\n"
    ),
    "file reference resolved, other errors": "provider:\n  name: ec2\n  credentials:\n    secret: ${file:secret.txt}\n",
    "file reference to a directory": "provider:\n  name: ec2\n  credentials:\n    secret: ${file:secretdir}\n",
    "file reference to a huge file": "provider:\n  name: ec2\n  credentials:\n    secret: ${file:huge.txt}\n",
    "env reference name is the secret": f"provider:\n  name: ec2\n  credentials:\n    secret: ${{env:{SECRET}}}\n",
}


@pytest.mark.parametrize("command", ["validate", "plan", "up"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_no_error_output_contains_the_secret(case, command, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DRB_TEST_SECRET", SECRET)
    monkeypatch.setenv("DRB_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    os.chmod(tmp_path / "secret.txt", 0o600)
    (tmp_path / "secretdir").mkdir()
    (tmp_path / "huge.txt").write_text((SECRET + "\n") * 20_000)
    spec = tmp_path / "env.yaml"
    spec.write_text(HEAD + CASES[case] + NODES)

    result = cli(command, str(spec))

    assert result.exit_code == ExitStatus.INVALID_SPEC, result.stderr
    output = result.stdout + result.stderr
    assert output.strip(), "the refusal says something"
    for secret in (SECRET, str(NUMERIC_SECRET), SECRET[:12]):
        assert secret not in output, output
    assert not (tmp_path / "state" / "environments").exists() or not any((tmp_path / "state").rglob("journal.json"))
