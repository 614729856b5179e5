// The old names of renamed suites: kept so that tests written against them still compile. Delete this file once
// no reference is left.

@available(*, deprecated, renamed: "FrontDoorSetupPlanTests")
typealias FrontDoorCoreTests = FrontDoorSetupPlanTests

/// The hand-written planner tests' old suite; its cases are now fixture directories (Fixtures/, PlannerFixtures).
@available(*, deprecated, renamed: "PlannerTests")
typealias PlannerFixtureTests = PlannerTests
