"""Progress of a class: one row per trainee, fed by the per-node progress of that trainee's clone."""

from __future__ import annotations

from labkit.progress import Reporter


class TraineeReporter:
    """A Reporter for one trainee's clone that reports on the trainee's row of the class's progress: the row
    shows the node that moved and stands at the step every node has reached."""

    def __init__(self, outer: Reporter, trainee: str) -> None:
        self.outer = outer
        self.trainee = trainee
        self.done: dict[str, int] = {}

    def start(self, nodes: list[str], total: int) -> None:
        self.done = dict.fromkeys(nodes, 0)

    def step(self, node: str, text: str, done: int | None = None) -> None:
        if done is not None:
            self.done[node] = max(self.done.get(node, 0), done)
        reached = min(self.done.values(), default=0) if self.done else done
        self.outer.step(self.trainee, f"{node}: {text}", reached)

    def note(self, text: str) -> None:
        self.outer.note(f"{self.trainee}: {text}")

    def finish(self) -> None:
        pass
