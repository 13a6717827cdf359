#!/bin/sh
# Test image whose boot fails: the node must end in ERROR with this text in its console tail.
echo "broken image: disk not found"
exit 7
