"""Instructor-only tools: the answers, the sealing of answers, the grader and the student release.

Nothing outside this package imports it, and ``make student-release`` leaves it out: a student's
copy of e2ee-lab runs without it. It holds what would give answers away if students had it:

- :mod:`.answers`: every sealed answer with the message a student reads when right, and the
  functions that compute truths (``receiver_verdicts()`` of Lab 03, Lab 07's caption frames);
- ``python -m e2ee_lab.labs.instructor seal``: writes ``e2ee_lab/labs/sealed.json`` from them;
- :mod:`.grade`: the grader (``python -m e2ee_lab.labs.instructor.grade``) and its judge process;
- :mod:`.leaks` and :mod:`.release`: the answers the masters contain, the scan for them, and the
  student release (``make student-release DEST=dir``).
- :mod:`.census`: the task census and the learning goals, read from the masters' task headings, for
  INSTRUCTORS.md (``python -m e2ee_lab.labs.instructor.census``).
"""
