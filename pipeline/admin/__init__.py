"""Operating camlog's Kafka topics: describe, lag, add partitions, rebalance replicas."""

from pipeline.admin.plan import Move, Plan, PlanError, plan_rebalance

__all__ = ["Move", "Plan", "PlanError", "plan_rebalance"]
