import CoreMetrics
import Synchronization

/// What the runtime reports through swift-metrics (labels are Prometheus-style names).
///
/// | Metric | Kind | Meaning |
/// |---|---|---|
/// | `continuum_workflows_started_total` | counter | workflows created by `start` |
/// | `continuum_workflows_finished_total{status}` | counter | workflows that completed, failed or were cancelled |
/// | `continuum_step_duration_seconds` | timer | one live run of a step's body (replays are not timed) |
/// | `continuum_step_retries_total` | counter | failed attempts that will be retried |
/// | `continuum_timer_lateness_seconds` | timer | a durable timer's firing time minus its deadline |
/// | `continuum_events_received_total` | counter | external events committed (duplicates not counted) |
/// | `continuum_workflows_resident` | gauge | workflows in memory |
/// | `continuum_workflows_suspended` | gauge | workflows suspended, waiting for someone to resume, reset or cancel them (from the store's counts at start, then kept) |
///
/// The store reports its own (`continuum_commit_*` for `LMDBStore`).
struct RuntimeMetrics: Sendable {
    let started: Counter
    let completed: Counter
    let failed: Counter
    let cancelled: Counter
    let stepDuration: Timer
    let retries: Counter
    let timerLateness: Timer
    let eventsReceived: Counter
    let snapshotsWritten: Counter
    let resident: Gauge
    let suspended: CountingGauge

    init(factory: any MetricsFactory) {
        started = Counter(label: "continuum_workflows_started_total", factory: factory)
        completed = Counter(label: "continuum_workflows_finished_total", dimensions: [("status", "completed")], factory: factory)
        failed = Counter(label: "continuum_workflows_finished_total", dimensions: [("status", "failed")], factory: factory)
        cancelled = Counter(label: "continuum_workflows_finished_total", dimensions: [("status", "cancelled")], factory: factory)
        stepDuration = Timer(label: "continuum_step_duration_seconds", factory: factory)
        retries = Counter(label: "continuum_step_retries_total", factory: factory)
        timerLateness = Timer(label: "continuum_timer_lateness_seconds", factory: factory)
        eventsReceived = Counter(label: "continuum_events_received_total", factory: factory)
        snapshotsWritten = Counter(label: "continuum_snapshots_written_total", factory: factory)
        resident = Gauge(label: "continuum_workflows_resident", factory: factory)
        suspended = CountingGauge(Gauge(label: "continuum_workflows_suspended", factory: factory))
    }

    func finished(_ status: WorkflowStatus) {
        switch status {
        case .completed: completed.increment()
        case .failed: failed.increment()
        case .cancelled: cancelled.increment()
        default: break
        }
    }
}

/// A gauge that counts up and down, reporting each new value.
final class CountingGauge: Sendable {
    private let gauge: Gauge
    private let value = Atomic<Int>(0)

    init(_ gauge: Gauge) { self.gauge = gauge }

    /// Sets the count (from the store's counts, say).
    func set(_ count: Int) {
        value.store(count, ordering: .relaxed)
        gauge.record(count)
    }

    func increment() { gauge.record(value.add(1, ordering: .relaxed).newValue) }
    func decrement() { gauge.record(max(0, value.subtract(1, ordering: .relaxed).newValue)) }
}
