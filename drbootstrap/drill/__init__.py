"""Fire drills: the environment rebuilt under another name, isolated from production, checked
twice (after recovery and after a reboot of every node), timed against its RTO target, always torn
down (leases with an expiry, reaped after a crash), remembered in a history and notified.

identity.py derives the drill's spec, lease.py marks what a drill owns, run.py runs one,
steady_state.py reboots and checks again, reap.py removes what expired, history.py keeps the
records, notify.py tells someone, schedule.py writes the systemd units.
"""
