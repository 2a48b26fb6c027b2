"""How check results are shown: grouping of identical outcomes across nodes, varying values, printing."""
