import ArgumentParser
@_spi(Testing) import Continuum
import Foundation

extension Bench {
    /// The JSON of the record bench's payloads, without the runtime: each of `workflows` rounds
    /// encodes an order (as a start input is encoded, keys sorted) and a receipt (as a step's
    /// result is), and decodes both back, once with `PayloadCoder` and once with Foundation's
    /// `JSONEncoder` and `JSONDecoder`. Rounds alternate between the two, and each side's CPU
    /// time is the median of its rounds, so that the ratio holds on a busy machine.
    func codecScenario() throws -> Report {
        let sorting = JSONEncoder()
        sorting.outputFormatting = [.sortedKeys]
        let plain = JSONEncoder()
        let decoder = JSONDecoder()
        let count = workflows
        func input(_ index: Int) -> RecordBenchWorkflow.Input {
            RecordBenchWorkflow.Input(
                order: BenchOrder(
                    id: "order-\(index)", customer: "customer-\(index % 97)", amountCents: 1_250 + index % 1_000,
                    items: ["sku-\(index % 13)", "sku-\(index % 29)"]),
                steps: 3)
        }
        func receipt(_ index: Int) -> BenchReceipt {
            BenchReceipt(step: "step-\(index % 3)", reference: "order-\(index)/\(index % 3)", amountCents: 1_250 + index)
        }
        // The values are made before timing: only encoding and decoding is measured.
        let inputs = (0..<count).map(input)
        let receipts = (0..<count).map(receipt)
        func payloadCoder() throws -> Int {
            var checksum = 0
            for index in 0..<count {
                let order = try PayloadCoder.encode(inputs[index], what: "the order", sortedKeys: true)
                let result = try PayloadCoder.encode(receipts[index], what: "the receipt")
                checksum &+= try PayloadCoder.decode(RecordBenchWorkflow.Input.self, from: order, what: "the order").order.amountCents
                checksum &+= try PayloadCoder.decode(BenchReceipt.self, from: result, what: "the receipt").amountCents
            }
            return checksum
        }
        func foundation() throws -> Int {
            var checksum = 0
            for index in 0..<count {
                let order = try sorting.encode(inputs[index])
                let result = try plain.encode(receipts[index])
                checksum &+= try decoder.decode(RecordBenchWorkflow.Input.self, from: order).order.amountCents
                checksum &+= try decoder.decode(BenchReceipt.self, from: result).amountCents
            }
            return checksum
        }
        var ours: [Double] = []
        var theirs: [Double] = []
        let started = ContinuousClock.now
        for _ in 0..<5 {
            var before = Self.cpuSeconds()
            let fast = try payloadCoder()
            ours.append(Self.cpuSeconds() - before)
            before = Self.cpuSeconds()
            let slow = try foundation()
            theirs.append(Self.cpuSeconds() - before)
            guard fast == slow else { throw ValidationError("PayloadCoder decoded amounts summing to \(fast), Foundation \(slow)") }
        }
        let elapsed = ContinuousClock.now - started
        var report = Report(scenario: "codec", workflows: count, concurrency: 1, seconds: elapsed.seconds, latencies: [])
        report.codecNanoseconds = ours.sorted()[2] / Double(count) * 1e9
        report.foundationNanoseconds = theirs.sorted()[2] / Double(count) * 1e9
        return report
    }
}
