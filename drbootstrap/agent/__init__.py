"""The node agent: a daemon answering mcollective-style RPC requests over STOMP through its agents."""
