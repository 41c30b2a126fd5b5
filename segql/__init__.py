"""segql: segment rules compiled to warehouse SQL, with a membership history.

import segql
module = segql.parse("segment paid where status = 'paid'")
project = segql.load_project("path/to/project")
sql = project.compile(dialect="postgres", as_of=None)
"""

from __future__ import annotations

from segql.downstream.consumers import changes
from segql.errors import SegqlError
from segql.language.parser import parse, parse_condition
from segql.language.printer import format_module
from segql.project import Project, load_project, project_from_text

__all__ = [
    "Project",
    "SegqlError",
    "changes",
    "format_module",
    "load_project",
    "parse",
    "parse_condition",
    "project_from_text",
]
__version__ = "0.1.0"
