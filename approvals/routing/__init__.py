"""Approval routing: a step's requests, who is asked, their decisions and the submissions that
start a step.

Read in this order:

- `stages`: a stage as a whole, the state of its branches, and waking the run that waits on it;
- `steps`: opening requests, re-opening them after changes, reassigning them;
- `policy`: when a set of decisions settles a request;
- `link_views`: an official's link, opened;
- `files`, `submitting`, `submissions`: a submission received, checked, and the step it starts;
- `decisions`: a decision recorded exactly once, and the request settled by its policy.
"""
