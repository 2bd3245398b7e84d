"""The grading zone: the trusted parent process.

It collects a submission (:mod:`.collect`), starts a worker in a sandbox level
(:mod:`.sandbox`) and talks to it over a channel with deadlines and limits (:mod:`.channel`,
:mod:`.session`), seeds the cases (:mod:`.seeds`), runs the checks' judge halves (one module
per kind of check, named as its worker half in :mod:`autograder.worker`: :mod:`.ops`,
:mod:`.modules`, :mod:`.training`, :mod:`.notebooks`, all on one case loop, :mod:`.cases`),
judges with one tolerance formula (:mod:`.numeric`) and names likely bugs (:mod:`.diagnose`),
scores (:mod:`.pipeline`) and records facts (:mod:`.results`) that the report writers
(:mod:`.reports`), the only authors of feedback text, turn into results.json, Markdown, HTML,
JUnit XML and the terminal table.

What may run here: the grader's own code only. Student code never runs in this process: it
is never imported here, and nothing a worker sends is unpickled or executed (JSON headers and
raw array bytes only). Hidden cases, expected values, test labels and the secret stay here.

What it may import: the standard library, NumPy, Jinja2, the top-level modules
(:mod:`autograder.config`, :mod:`autograder.paths`) and the worker zone's tables (the op
specs, the names of the module runners, recipes and notebook calls, the wire format), never
:mod:`autograder.authoring`.
"""
