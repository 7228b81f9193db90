"""What keeps a cycle going: the run that carries it, and the sweep that chases what waits.

Read in this order:

- `cycles`: a cycle and its one run, its heartbeat, restarts and schedule;
- `chasing`: new links, superiors brought in, the one escalation;
- `sweep`: reminders before the due time, escalation or expiry at it.
"""
