import Metrics
package import MetricsTestKit

/// swift-metrics is bootstrapped once per process (all the test targets share one on Linux);
/// instruments made before stay no-ops, so a test creates what it measures after touching this,
/// and labels it with names of its own.
package let sharedTestMetrics: TestMetrics = {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    return metrics
}()
