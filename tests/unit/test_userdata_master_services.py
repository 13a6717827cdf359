"""The master boot script's Python helper writes the dnsmasq config from command-line values."""

from __future__ import annotations

from drbootstrap.images.master_services import main


def test_dnsmasq_config_command_writes_config_and_empty_hosts_file(tmp_path):
    out = tmp_path / "dns" / "dnsmasq.conf"
    hosts = tmp_path / "dns" / "hosts"

    code = main([
        "dnsmasq-config", "--domain", "demo.internal", "--listen", "10.213.0.2", "--hosts-file", str(hosts),
        "--pid-file", str(tmp_path / "dnsmasq.pid"), "--out", str(out), "--upstream", "10.0.0.53",
    ])

    assert code == 0
    text = out.read_text()
    assert "listen-address=10.213.0.2" in text and "server=10.0.0.53" in text
    assert hosts.read_text() == ""


def test_dnsmasq_config_command_reports_a_bad_value_in_one_line(tmp_path, capsys):
    code = main([
        "dnsmasq-config", "--domain", "demo.internal", "--listen", "not-an-ip", "--hosts-file", str(tmp_path / "h"),
        "--pid-file", str(tmp_path / "p"), "--out", str(tmp_path / "c"),
    ])

    assert code != 0
    assert capsys.readouterr().err.count("\n") == 1
