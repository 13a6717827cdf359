"""mcollective-style RPC over STOMP: the message model, its wire protocols, transport, client."""
