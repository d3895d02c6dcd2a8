"""DCE/RPC proper: PDU bodies (pure parse functions), association state and call pairing,
security contexts, endpoint-mapper learning and missing-bind resolution."""
