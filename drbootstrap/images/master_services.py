"""What images/master/boot.sh asks Python to do: write the dnsmasq config, start the broker
(ActiveMQ, or RabbitMQ with --kind rabbitmq: drbootstrap.rabbitmq), find
(or, when the image is made, build) puppetserver's ahead-of-time compiled jar.

    python3 -m drbootstrap.images.master_services dnsmasq-config --domain D --listen ADDR \
        --hosts-file F --pid-file P --out CONF [--upstream IP ...] [--user NAME] [--log-file F]
    python3 -m drbootstrap.images.master_services broker [--kind activemq|rabbitmq] --base-dir DIR \
        --host ADDR --port 61613 [--tls --tls-name NAME ... [--issuer-cert F --issuer-key F]]
        (stomp+ssl on ADDR:PORT, its certificate in DIR/tls, issued by the master's issuing CA when
        given, else self-signed; plain STOMP on loopback only)
        [--cluster-seed ADDR --cookie-file F]   (RabbitMQ: a node of the cluster whose first node
        is ADDR, named by --host; F holds the cluster's Erlang cookie, 0600)
        [--supervise PID_FILE]   (RabbitMQ: stay in the foreground, restart it whenever it ends:
        drbootstrap.images.broker_supervisor; a broker node's boot.sh runs it so)
    python3 -m drbootstrap.images.master_services puppetserver-aot [--build] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from drbootstrap.errors import DrbError

if TYPE_CHECKING:
    from drbootstrap.messaging.broker_ca import CertifiedKey
    from drbootstrap.rabbitmq import RabbitBroker


def _dnsmasq_config(args: argparse.Namespace) -> None:
    from drbootstrap.dns.dnsmasq_config import DnsmasqSettings, write_dnsmasq_config

    settings = DnsmasqSettings(
        domain=args.domain,
        listen_address=args.listen,
        port=args.port,
        hosts_file=Path(args.hosts_file),
        pid_file=Path(args.pid_file),
        upstream_servers=tuple(args.upstream or ()),
        user=args.user,
        log_file=Path(args.log_file) if args.log_file else None,
    )
    write_dnsmasq_config(settings, Path(args.out))


def _broker(args: argparse.Namespace) -> None:
    from drbootstrap.broker import master_broker_tls, start_broker

    base = Path(args.base_dir)
    issuer = None
    if args.tls and args.issuer_cert and args.issuer_key:
        from drbootstrap.messaging.broker_ca import CertifiedKey

        issuer = CertifiedKey(Path(args.issuer_cert).read_text(), Path(args.issuer_key).read_text())
    if args.kind == "rabbitmq" and args.supervise:
        _supervised_rabbitmq(args, base, issuer)
        return
    if args.kind == "rabbitmq":  # the Erlang VM's pid: its death is the node's (a crash to restart from)
        node = _rabbitmq(args, base, issuer)
        print(node.node_pid or node.pid)
        return
    if args.tls:
        tls = master_broker_tls(base / "tls", args.host, tuple(args.tls_name or ()), issuer)
        broker = start_broker(base, host=args.host, port=args.port, tls=tls, tls_port=args.port,
                              plain_host="127.0.0.1")
    else:
        broker = start_broker(base, host=args.host, port=args.port)
    # The broker runs on in its own session; boot.sh records its pid for the agent and for stop.
    print(broker.pid)


def _rabbitmq(args: argparse.Namespace, base: Path, issuer: CertifiedKey | None) -> RabbitBroker:
    from drbootstrap.rabbitmq import RabbitCluster, master_rabbitmq_tls, start_rabbitmq

    cluster = None
    if args.cluster_seed:
        if not args.cookie_file:
            raise SystemExit("--cluster-seed needs --cookie-file")
        cluster = RabbitCluster(args.host, args.cluster_seed, Path(args.cookie_file))
    if args.tls:
        tls = master_rabbitmq_tls(base / "tls", args.host, tuple(args.tls_name or ()), issuer)
        return start_rabbitmq(base, host=args.host, port=args.port, tls=tls, tls_port=args.port,
                              plain_host="127.0.0.1", cluster=cluster)
    return start_rabbitmq(base, host=args.host, port=args.port, cluster=cluster)


def _supervised_rabbitmq(args: argparse.Namespace, base: Path, issuer: CertifiedKey | None) -> None:
    from drbootstrap.images.broker_supervisor import Supervisor, stamped, supervise

    def log(line: str) -> None:
        print(stamped(line), flush=True)

    supervise(Supervisor("rabbitmq", lambda: _rabbitmq(args, base, issuer), log), Path(args.supervise))


def _puppetserver_aot(args: argparse.Namespace) -> None:
    from drbootstrap.images import puppetserver_aot

    cache_dir = Path(args.cache_dir)
    jar = puppetserver_aot.build(cache_dir) if args.build else puppetserver_aot.lookup(cache_dir)
    if jar is None:
        raise SystemExit(1)  # no jar for this puppetserver: boot.sh starts it without one
    print(jar)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="drbootstrap.images.master_services")
    commands = top.add_subparsers(dest="command", required=True)
    dnsmasq = commands.add_parser("dnsmasq-config", help="write the master's dnsmasq.conf")
    dnsmasq.add_argument("--domain", required=True)
    dnsmasq.add_argument("--listen", required=True)
    dnsmasq.add_argument("--port", type=int, default=53)
    dnsmasq.add_argument("--hosts-file", required=True)
    dnsmasq.add_argument("--pid-file", required=True)
    dnsmasq.add_argument("--out", required=True)
    dnsmasq.add_argument("--upstream", action="append")
    dnsmasq.add_argument("--user", help="user dnsmasq runs as (default: dnsmasq's own choice)")
    dnsmasq.add_argument("--log-file", help="dnsmasq's log (default: syslog); the probes show its tail")
    dnsmasq.set_defaults(run=_dnsmasq_config)
    broker = commands.add_parser("broker", help="start the STOMP broker (ActiveMQ or RabbitMQ) and print its pid")
    broker.add_argument("--kind", choices=("activemq", "rabbitmq"), default="activemq")
    broker.add_argument("--base-dir", required=True)
    broker.add_argument("--host", required=True)
    broker.add_argument("--port", type=int, default=61613)
    broker.add_argument("--tls", action="store_true", help="stomp+ssl on HOST:PORT, plain STOMP on loopback only")
    broker.add_argument("--tls-name", action="append", help="another name for the certificate (the controller's)")
    broker.add_argument("--issuer-cert", help="the master's issuing CA certificate (PEM) for the broker's")
    broker.add_argument("--issuer-key", help="its private key (a 0600 file, never the key itself)")
    broker.add_argument("--cluster-seed", help="RabbitMQ: join the cluster of the node at this address")
    broker.add_argument("--cookie-file", help="RabbitMQ cluster: the Erlang cookie's file (0600)")
    broker.add_argument("--supervise", metavar="PID_FILE",
                        help="RabbitMQ: run in the foreground, restarting it whenever it ends (one line each)")
    broker.set_defaults(run=_broker)
    aot = commands.add_parser("puppetserver-aot",
                              help="print the compiled-jar path for this puppetserver (exit 1: none)")
    aot.add_argument("--build", action="store_true", help="compile it first if missing (when the image is made)")
    aot.add_argument("--cache-dir", default="/var/cache/drbootstrap/puppetserver")
    aot.set_defaults(run=_puppetserver_aot)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except DrbError as error:
        print(f"drbootstrap: {error}", file=sys.stderr)
        return int(error.exit_status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
