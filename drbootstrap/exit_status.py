"""Process exit codes: one per kind of outcome, so scripts can tell them apart."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  # an expected failure with no more specific code
    USAGE = 2  # click's own code for a bad command line
    INVALID_SPEC = 3  # the environment spec (or another input file) is wrong
    PREREQUISITE = 4  # not root, a tool missing, an address overlap: fix the machine
    PROVIDER = 5  # the cloud refused or failed
    MESSAGING = 6  # broker unreachable, no replies, refused request
    PARTIAL = 7  # the run finished but some nodes failed
    TIMEOUT = 8  # waited as long as allowed
    NOT_FOUND = 9  # a node, volume or environment that is not there
    BUSY = 10  # another command holds the environment (up, down, backup, drill, failover)
    STATE = 11  # the state directory cannot be written (disk full, read-only): nothing was lost
    NOT_CONFIRMED = 12  # a destructive command was not confirmed (no terminal and no --yes, or a no)
    BACKUP = 13  # no backup matches what was asked, or every candidate failed verification
    DRILL_FAILED = 14  # a fire drill failed: a check failed, recovery missed its RTO target, or it was cut short
    NOT_SWITCHED = 15  # failover refused to switch the public DNS: the target site failed verification
    FENCED = 16  # a newer holder took the environment's lease: this run may not write its journal
    INTERRUPTED = 130  # Ctrl-C
    BUG = 70  # an unexpected exception: a defect in drbootstrap (EX_SOFTWARE)
