"""``grade batch``: a whole class, graded in parallel, resumable, with a gradebook.

It sits above the three zones: every submission is graded by the ``grade`` command itself in a
subprocess of its own (so each gets its own sandbox, and a grader crash on one submission is
that submission's failure, not the batch's), and this package only reads what ``grade``
wrote (JSON and text: nothing it produced is ever unpickled or imported).

* :mod:`.submissions` finds the submissions in the layouts instructors have (one entry per
  student, Gradescope's export, nbgrader's ``submitted/``);
* :mod:`.runner` grades one submission into ``OUT/<student>/`` atomically, decides what
  ``--resume`` skips, and runs a local pool (``-j N``);
* :mod:`.cluster` sends the same work to a Dask cluster (``--dask ADDRESS``);
* :mod:`.gradebook` writes the class's files (``gradebook.csv``, ``canvas.csv``,
  ``gradescope.csv``, ``histogram.png``, ``index.html``) and the summary;
* :mod:`.cli` is ``grade batch``.
"""
