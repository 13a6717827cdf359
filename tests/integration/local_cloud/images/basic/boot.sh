#!/bin/sh
# Test image: every boot records itself and starts a daemon that leaves the process group.
echo "basic image booting as $(hostname)"
date +%s.%N >>/run/boot-marker
setsid sh -c 'echo $$ >/run/testd.pid; exec sleep 100000' </dev/null >/dev/null 2>&1 &
