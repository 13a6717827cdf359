"""`drbootstrap ping | rpc | reboot | puppet`: the RPC client on the command line (renders only)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drbootstrap.cli.output import with_schema_version
from drbootstrap.exit_status import ExitStatus

if TYPE_CHECKING:  # the messaging stack is imported only when a command runs
    from drbootstrap.messaging.client import ClientConfig, RpcClient, RpcResult
    from drbootstrap.messaging.envelope import Filter

CLIENT_CONFIG_ENV = "DRB_CLIENT_CONFIG"
PUPPET_RUN_TIMEOUT = 1800.0


def client_options(command: Callable) -> Callable:
    """The options every client command shares: connection, key, filters, expectation, output."""
    options = [
        click.option(
            "-f", "--env", "env_file", type=click.Path(path_type=Path),
            help="An environment spec brought up with `drbootstrap up`: its broker, keys and TLS "
            "certificate come from its state (other options still override).",
        ),
        click.option(
            "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
            help="With -f: where its state lives (default: $DRB_STATE_DIR or /var/lib/drbootstrap).",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            envvar=CLIENT_CONFIG_ENV,
            help=f"Client config YAML (or ${CLIENT_CONFIG_ENV}).",
        ),
        click.option("--broker", "brokers", multiple=True, help="stomp[+ssl]://HOST:PORT; repeat for failover."),
        click.option(
            "--key-file", type=click.Path(path_type=Path), help="Pre-shared key or ed25519 private key (PEM)."
        ),
        click.option("--key-id", help="Name of the key (default: psk, or the PEM file's stem)."),
        click.option(
            "--trusted-keys",
            "trusted_keys_dir",
            type=click.Path(path_type=Path),
            help="ed25519: directory of <key id>.pub files whose replies are trusted.",
        ),
        click.option("--tls-ca", type=click.Path(path_type=Path), help="CA certificate for stomp+ssl brokers."),
        click.option("--identity", help="This client's identity (reply queue name)."),
        click.option("--collective", help="Collective (default mcollective)."),
        click.option(
            "--protocol",
            type=click.Choice(["native", "mcollective"]),
            help="Wire protocol: native (default) or mcollective "
            "(MCollective 2.12 peers; --key-file holds plugin.psk).",
        ),
        click.option(
            "--broker-kind",
            type=click.Choice(["activemq", "rabbitmq"]),
            help="The broker's STOMP destination naming: activemq (default) or rabbitmq.",
        ),
        click.option("-I", "--with-identity", "identity_filter", multiple=True, help="Identity or /regex/."),
        click.option("-F", "--with-fact", "fact_filter", multiple=True, help="FACT=VALUE, FACT=/RE/, FACT<op>VALUE."),
        click.option("-C", "--with-class", "class_filter", multiple=True, help="Puppet class or /regex/."),
        click.option("-A", "--with-agent", "agent_filter", multiple=True, help="Agent or /regex/."),
        click.option("--expect", help="Identities you expect: a,b,c or @FILE (one per line)."),
        click.option("--direct", is_flag=True, help="Address the --expect identities directly, without discovery."),
        click.option("--discovery-timeout", type=float,
                     help="Longest discovery may take (s, default 2; with --expect, 1 s more per 1,000 expected)."),
        click.option("-t", "--timeout", type=float, help="Longest to wait for action replies (s, default 60)."),
        click.option("--connect-timeout", type=float, help="Longest to keep retrying the broker(s) (s, default 10)."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(params: dict[str, Any]) -> tuple[ClientConfig, Filter, list[str], bool]:
    from drbootstrap.messaging.client import ClientConfig
    from drbootstrap.messaging.filters import build_filter

    values: dict[str, Any] = {}
    expected_by_env: list[str] = []
    if params.get("env_file"):
        values, expected_by_env = _environment_settings(params["env_file"], params.get("state_dir"))
    config_file = params.get("config_file")
    if config_file:
        values.update(_read_client_file(config_file))
    for option, key in (
        ("key_file", "key_file"),
        ("key_id", "key_id"),
        ("tls_ca", "tls_ca"),
        ("identity", "identity"),
        ("collective", "collective"),
        ("discovery_timeout", "discovery_timeout"),
        ("timeout", "timeout"),
        ("protocol", "protocol"),
        ("broker_kind", "broker_kind"),
        ("connect_timeout", "connect_timeout"),
        ("trusted_keys_dir", "trusted_keys_dir"),
    ):
        if params.get(option) is not None:
            values[key] = params[option]
    if params.get("brokers"):
        values["brokers"] = list(params["brokers"])
    expect_text = params.get("expect") or values.pop("expect", None)
    if not values.get("brokers"):
        raise click.UsageError("no broker: pass -f ENV_FILE, --broker stomp://HOST:PORT or set brokers in --config")
    for key in ("key_file", "tls_ca", "trusted_keys_dir"):
        if values.get(key):
            values[key] = Path(values[key])
    config = ClientConfig(**values)
    filter_ = build_filter(
        params["identity_filter"], params["fact_filter"], params["class_filter"], params["agent_filter"]
    )
    expect = _expected(expect_text)
    filtered = any(params[name] for name in ("identity_filter", "fact_filter", "class_filter", "agent_filter"))
    if not expect and not filtered:
        expect = expected_by_env  # the environment knows who should answer: discovery ends when all did
    if params.get("direct") and not expect:
        raise click.UsageError("--direct needs --expect with the identities to address")
    return config, filter_, expect, bool(params.get("direct"))


def _environment_settings(spec_file: Path, state_dir: Path | None) -> tuple[dict[str, Any], list[str]]:
    """The client settings of an environment brought up by `up` (its state holds the keys), and who
    should answer."""
    from drbootstrap.executor.operator_access import environment_broker
    from drbootstrap.paths import default_state_dir
    from drbootstrap.spec import load_spec

    found = environment_broker(load_spec(spec_file), state_dir or default_state_dir())
    values: dict[str, Any] = {"brokers": [found.broker], "key_file": found.key_file, "protocol": found.protocol,
                              "trusted_keys_dir": found.trusted_keys_dir, "tls_ca": found.tls_ca}
    if found.key_id:
        values["key_id"] = found.key_id
    return values, found.expected


def _read_client_file(path: Path) -> dict[str, Any]:
    import yaml

    from drbootstrap.errors import SpecError
    from drbootstrap.messaging.client import ClientConfig

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SpecError([f"{path}: cannot read the client config: {error}"]) from error
    if not isinstance(raw, dict):
        raise SpecError([f"{path}: the client config must be a mapping"])
    known = set(ClientConfig.__dataclass_fields__) | {"expect"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError([f"{path}: unknown setting(s) {unknown} (known: {', '.join(sorted(known))})"])
    if isinstance(raw.get("brokers"), str):
        raw["brokers"] = [raw["brokers"]]
    if isinstance(raw.get("expect"), list):
        raw["expect"] = ",".join(raw["expect"])
    return raw


def _expected(text: str | None) -> list[str]:
    if not text:
        return []
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as error:
            raise click.UsageError(f"cannot read the --expect file {path}: {error.strerror}") from error
    return [name for name in text.replace(",", " ").split() if name]


def _with_client(function: Callable) -> Callable:
    @functools.wraps(function)
    def run(**params: Any) -> int:
        import logging

        from drbootstrap.messaging.client import RpcClient

        logging.getLogger("stomp.py").setLevel(logging.CRITICAL)  # its per-attempt noise; we report once
        config, filter_, expect, direct = _settings(params)
        rest = {k: v for k, v in params.items() if k not in ("expect", "direct", "env_file", "state_dir")}
        with RpcClient(config) as client:
            return function(client, filter_, expect, direct, **rest)

    return run


# -- commands -----------------------------------------------------------------------------------


@click.command("ping")
@client_options
@_with_client
def ping(client: RpcClient, filter_: Filter, expect: list[str], direct: bool, as_json: bool, **_: Any) -> int:
    """Discover agents over the broker (ends as soon as every --expect identity answered).

    \b
    Examples:
      drbootstrap ping -f env.yaml                  # every node of the environment
      drbootstrap ping -f env.yaml -F role=web      # mco-style filters on top
      drbootstrap ping --broker stomp://10.0.0.1:61613 --key-file client.key
    """
    result = client.ping(filter_, expect)
    if as_json:
        click.echo(json.dumps(with_schema_version(_result_json(result)), indent=2, sort_keys=True))
    else:
        for name in sorted(result.latency_ms, key=result.latency_ms.__getitem__):
            click.echo(f"{name:<40} time={result.latency_ms[name]:.2f} ms")
        times = list(result.latency_ms.values())
        click.echo("\n---- ping statistics ----")
        if times:
            click.echo(
                f"{len(times)} replies max: {max(times):.2f} min: {min(times):.2f} avg: {sum(times) / len(times):.2f}"
            )
        _echo_summary(result)
    return _exit_status(result)


@click.command("rpc")
@client_options
@click.option("--batch", "batch_size", type=int, default=0, help="Call at most N nodes at a time.")
@click.option("--batch-sleep", type=float, default=0.0, help="Seconds between batches.")
@click.argument("agent_name", metavar="AGENT")
@click.argument("action")
@click.argument("arguments", nargs=-1, metavar="KEY=VALUE...")
@_with_client
def rpc(
    client: RpcClient,
    filter_: Filter,
    expect: list[str],
    direct: bool,
    agent_name: str,
    action: str,
    arguments: tuple[str, ...],
    **params: Any,
) -> int:
    """Call AGENT ACTION key=value... on the matching nodes.

    \b
    Examples:
      drbootstrap rpc -f env.yaml rpcutil ping
      drbootstrap rpc -f env.yaml -I web01 puppet status
      drbootstrap rpc -f env.yaml --batch 2 puppet runonce force=true
    """
    return _call(client, filter_, expect, direct, agent_name, action, _parse_arguments(arguments), params)


@click.command("reboot")
@client_options
@click.option("--batch", "batch_size", type=int, default=0, help="Reboot at most N nodes at a time.")
@click.option("--batch-sleep", type=float, default=0.0, help="Seconds between batches.")
@click.option("--delay", type=float, help="Seconds the node waits after replying (default from its config).")
@_with_client
def reboot(
    client: RpcClient, filter_: Filter, expect: list[str], direct: bool, delay: float | None, **params: Any
) -> int:
    """Reboot matching nodes through their agent (each replies first).

    \b
    Examples:
      drbootstrap reboot -f env.yaml -I web02
      drbootstrap reboot -f env.yaml -F role=web --batch 1 --batch-sleep 30
    """
    data = {"delay": delay} if delay is not None else {}
    return _call(client, filter_, expect, direct, "reboot", "reboot", data, params)


@click.command("puppet")
@client_options
@click.option("--batch", "batch_size", type=int, default=0, help="At most N nodes at a time.")
@click.option("--batch-sleep", type=float, default=0.0, help="Seconds between batches.")
@click.option("--force", is_flag=True, help="runonce: run now, no splay.")
@click.option("--noop", is_flag=True, help="runonce: report changes, make none.")
@click.option("--tags", help="runonce: only these tags (comma-separated).")
@click.option("--environment", help="runonce: Puppet environment.")
@click.option("--splay", is_flag=True, help="runonce: wait a random time first (up to --splaylimit).")
@click.option("--splaylimit", type=int, help="runonce: longest splay (s).")
@click.option("--message", help="disable: why Puppet is disabled.")
@click.argument("command", type=click.Choice(["runonce", "enable", "disable", "status", "last_run_summary"]))
@_with_client
def puppet(client: RpcClient, filter_: Filter, expect: list[str], direct: bool, command: str, **params: Any) -> int:
    """Run, enable, disable or query Puppet on matching nodes.

    \b
    Examples:
      drbootstrap puppet -f env.yaml status
      drbootstrap puppet -f env.yaml -C role::web runonce --noop
      drbootstrap puppet -f env.yaml -I db01 disable --message "restoring the database"
    """
    data: dict[str, Any] = {}
    if command == "runonce":
        for key in ("force", "noop", "splay"):
            if params.get(key):
                data[key] = True
        for key in ("tags", "environment", "splaylimit"):
            if params.get(key) is not None:
                data[key] = params[key]
    elif command == "disable" and params.get("message"):
        data["message"] = params["message"]
    if command == "runonce" and client.config.timeout == type(client.config).timeout:
        client.config.timeout = PUPPET_RUN_TIMEOUT  # not set anywhere: a catalog run takes minutes
    return _call(client, filter_, expect, direct, "puppet", command, data, params)


# -- rendering ----------------------------------------------------------------------------------


def _call(
    client: RpcClient,
    filter_: Filter,
    expect: list[str],
    direct: bool,
    agent_name: str,
    action: str,
    data: dict[str, Any],
    params: dict[str, Any],
) -> int:
    result = client.call(
        agent_name, action, data, filter_=filter_, targets=expect if direct else (), expect=expect,
        batch_size=params.get("batch_size") or 0, batch_sleep=params.get("batch_sleep") or 0.0,
    )
    if params.get("as_json"):
        click.echo(json.dumps(with_schema_version(_result_json(result)), indent=2, sort_keys=True, default=str))
    else:
        for reply in sorted(result.replies, key=lambda r: r.sender_id):
            status = (
                "OK"
                if reply.status_code == 0
                else f"{reply.status_code.name} ({int(reply.status_code)}): {reply.status_message}"
            )
            click.echo(f"{reply.sender_id:<40} {status}")
            for key, value in sorted(reply.data.items()):
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
                click.echo(f"    {key}: {text}")
        _echo_summary(result)
    return _exit_status(result)


def _echo_summary(result: RpcResult) -> None:
    click.echo("")
    click.echo(result.summary())
    if result.no_response:
        click.echo(f"No response from: {', '.join(result.no_response)}")


def _result_json(result: RpcResult) -> dict[str, Any]:
    return {
        "agent": result.agent,
        "action": result.action,
        "replies": [
            {
                "sender": reply.sender_id,
                "status_code": int(reply.status_code),
                "status_message": reply.status_message,
                "data": reply.data,
                "time_ms": round(result.latency_ms.get(reply.sender_id, 0.0), 2),
            }
            for reply in sorted(result.replies, key=lambda r: r.sender_id)
        ],
        "no_response": result.no_response,
        "summary": result.summary(),
        "elapsed_ms": round(result.elapsed_ms, 1),
    }


def _exit_status(result: RpcResult) -> int:
    if not result.replies:
        return int(ExitStatus.MESSAGING)
    if result.no_response or any(reply.status_code != 0 for reply in result.replies):
        return int(ExitStatus.PARTIAL)
    return int(ExitStatus.OK)


def _parse_arguments(arguments: tuple[str, ...]) -> dict[str, Any]:
    """key=value pairs; values read as JSON when they parse (true, 3, [..]), else as strings."""
    data: dict[str, Any] = {}
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep or not key:
            raise click.UsageError(f"bad argument {argument!r}: use KEY=VALUE")
        try:
            data[key] = json.loads(value)
        except ValueError:
            data[key] = value
    return data

