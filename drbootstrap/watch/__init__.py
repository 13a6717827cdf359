"""Keeping an environment alive after recovery.

health.py decides how the environment stands (what `check` prints and `watch` acts on);
state.py persists what the watcher saw and did; guard.py is the meltdown guard; watcher.py is the
loop that resurrects dead workers through the runner `up` uses; standby.py moves a dead active
node's name to a warm spare of its group; unit.py writes its systemd unit.
"""
