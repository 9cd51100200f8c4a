extension JetStream {
    /// Makes sure the key-value bucket `bucket` (stream `KV_<bucket>`, one value a key) exists,
    /// creating it with `maxAge` and `replicas` when it does not; an existing one is used as it is.
    func ensureKeyValueBucket(_ bucket: String, maxAge: Duration, replicas: Int) async throws(MessageStoreError) {
        let stream = "KV_" + bucket
        do {
            _ = try await streamInfo(stream)
        } catch  where error.jetStreamError == .streamNotFound {
            var config = StreamConfig(name: stream)
            config.subjects = ["$KV.\(bucket).>"]
            config.maxAge = maxAge.nanoseconds
            // The server wants the duplicate window within the maximum age.
            config.duplicateWindow = min(maxAge, .seconds(120)).nanoseconds
            config.maxMsgsPerSubject = 1
            config.storage = "file"
            config.numReplicas = min(max(replicas, 1), 5)
            config.allowRollupHdrs = true
            config.denyDelete = true
            config.allowDirect = true
            do {
                _ = try await createStream(config)
            } catch {
                // Another worker may have created it at the same moment.
                _ = try await streamInfo(stream)
            }
        }
    }
}
