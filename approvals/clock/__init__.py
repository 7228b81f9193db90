"""A cycle's dates on the wall clock.

Read in this order:

- `deadlines`: the plan's local calendar days as UTC instants, and a cycle's `CycleClock` (as planned,
  shifted by a late start, or compressed);
- `rehearsals`: a cycle of the shipped plan run on a compressed calendar.
"""
