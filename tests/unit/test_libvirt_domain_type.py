"""The libvirt provider's domain type: auto picks KVM only where the CPU offers hardware virtualisation."""

from pathlib import Path

import pytest

from drbootstrap.providers.libvirt import driver


def _cpuinfo(monkeypatch: pytest.MonkeyPatch, flags: str, kvm: bool) -> None:
    real_read, real_exists = Path.read_text, Path.exists

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        return f"flags\t\t: fpu {flags} sse\n" if str(self) == "/proc/cpuinfo" else real_read(self)

    def exists(self: Path) -> bool:
        return kvm if str(self) == "/dev/kvm" else real_exists(self)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(Path, "exists", exists)


@pytest.mark.parametrize(("flags", "kvm", "expected"), [
    ("vmx", True, True), ("svm", True, True),
    ("hypervisor", True, False),  # /dev/kvm without the CPU's extensions: a paravirtual KVM
    ("vmx", False, False),
])
def test_hardware_virtualisation(monkeypatch: pytest.MonkeyPatch, flags: str, kvm: bool, expected: bool) -> None:
    _cpuinfo(monkeypatch, flags, kvm)
    assert driver.hardware_virtualisation() is expected


def test_auto_is_a_domain_type() -> None:
    assert driver.DOMAIN_TYPES[0] == "auto"
