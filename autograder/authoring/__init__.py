"""(zone docstring: written in the next commit)"""
