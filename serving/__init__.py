"""Everything that answers over HTTP: the control plane (`app`, one router per resource in `api/`,
run by `local`), campaigns on Ray Serve (`campaign`, deployed by `deployments`) and the event log
(`events`, one per dataset group, owned by `event_logs`)."""
