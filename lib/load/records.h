// File: records.h
//
// Which requests a run records one by one (RunSpec.records) or abandons
// (RunSpec.cancellation), and how many records each part of the run may
// keep. Pure and deterministic: the same
// seed, client id and request number always give the same decision, on any
// worker, whatever the timing.
//
//   RecordSampler s(spec.records());
//   if (s.enabled() && s.Keep(client_id, request_index)) { ... }
//   int64_t cap = RecordShare(spec, client_count, rate_share);  // this shard's
//
// Thread-safe (immutable after construction).

#pragma once

#include <cstdint>

#include "llmload/v1/run.pb.h"

namespace llmload::load {

// A deterministic share `rate` of a run's requests.
class RequestSampler {
 public:
  RequestSampler(double rate, uint64_t seed);
  bool enabled() const { return threshold_ > 0; }
  // True when the request numbered `request_index` (1-based) of client
  // `client_id` is in the sample: a hash of (seed, client, index) falls
  // below `rate` of the hash range.
  bool Keep(int32_t client_id, int64_t request_index) const;

 private:
  uint64_t seed_;
  // Keep when hash < threshold_; with rate 1 every hash is kept.
  uint64_t threshold_ = 0;
  bool all_ = false;
};

// The requests a run records (RunSpec.records).
class RecordSampler : public RequestSampler {
 public:
  explicit RecordSampler(const v1::RecordsSpec& spec)
      : RequestSampler(spec.sample_rate(), spec.seed()) {}
};

// The requests a run abandons mid-response (RunSpec.cancellation). Its
// hash is salted apart from the records', so that the same seed does not
// make the cancelled requests the recorded ones.
class CancelSampler : public RequestSampler {
 public:
  explicit CancelSampler(const v1::Cancellation& spec)
      : RequestSampler(spec.share(), spec.seed() ^ 0xC0FFEE5A17ED0001ULL) {}
};

// The sessions a reconnect storm drops (RunSpec.reconnect_storm): one
// decision per client id (request number 0), salted apart from the records'
// and the cancellations' hashes.
class StormSampler : public RequestSampler {
 public:
  explicit StormSampler(const v1::ReconnectStorm& spec)
      : RequestSampler(spec.share(), spec.seed() ^ 0x57012AD20B5EED03ULL) {}
  bool Drops(int32_t client_id) const { return Keep(client_id, 0); }
};

// The run's cap on records: max_records, or the default when unset.
int64_t RecordCap(const v1::RecordsSpec& spec);

// The records one shard may keep: its share of the run's cap, rounded up
// (at least 1 while recording is on). The share is the shard's clients over
// the run's clients (closed, duration) or its share of the rate (open).
int64_t RecordShare(const v1::RunSpec& spec, int64_t shard_clients, double rate_share);

}  // namespace llmload::load
