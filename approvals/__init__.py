"""The plan and its rules, with no framework: what the flows, the outbox and the service build on.

Read in this order; each part uses only those above it (import-linter checks it):

- the base: `errors`, `statuses`, `config`, `db`, `models`, `audit`, `tokens`, `i18n`;
- `plan`: the plan file, loaded and checked;
- `people`: who decides, on which day, for whom;
- `clock`: a cycle's dates on the wall clock, and rehearsals;
- `routing`: a step's requests, submissions and decisions;
- `running`: a cycle's run, and the sweep that chases what waits;
- `coordination`: what coordinators read and do;
- `wording`: what people read (a step shown, the emails as data);
- `consolidated`: the lead agency's consolidated report.
"""
