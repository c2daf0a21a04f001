// llmload: the command-line client. `llmload local` runs a whole test on
// this machine; the other commands talk to a running orchestrator.

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "lib/common/backoff.h"
#include "lib/common/log.h"
#include "llmload/v1/orchestrator.grpc.pb.h"
#include "services/common/crash_handler.h"
#include "services/common/grpc_util.h"
#include "llmload/v1/collector.grpc.pb.h"
#include "tools/llmload/cli_args.h"
#include "tools/llmload/compare.h"
#include "tools/llmload/run_report.h"
#include "tools/llmload/interrupt.h"
#include "tools/llmload/health.h"
#include "tools/llmload/local_cluster.h"
#include "tools/llmload/report.h"

namespace llmload::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRunFailed = 1;
constexpr int kExitUsage = 2;

// Raised by the signal thread in main(); never destroyed, as that thread
// may still raise it while the process exits.
InterruptLatch& Interrupts() {
  static InterruptLatch* latch = new InterruptLatch();
  return *latch;
}

using Stub = v1::Orchestrator::Stub;

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

int RpcError(const char* what, const grpc::Status& st) {
  std::fprintf(stderr, "llmload: %s failed: %s: %s\n", what,
               absl::StatusCodeToString(static_cast<absl::StatusCode>(st.error_code())).c_str(),
               st.error_message().c_str());
  return kExitUsage;
}

bool Terminal(v1::RunState s) {
  return s == v1::COMPLETED || s == v1::FAILED || s == v1::CANCELLED;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

void PrintRun(const v1::Run& run, bool json) {
  if (json) {
    std::cout << ToJson(run) << std::endl;
  } else {
    std::cout << FormatReport(run) << std::flush;
  }
}

// Progress on a terminal: one bar redrawn in place on stderr.
class ProgressBar {
 public:
  ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1 && std::getenv("TERM") != nullptr &&
                           std::string(std::getenv("TERM")) != "dumb") {}
  bool enabled() const { return enabled_; }
  void Draw(const v1::RunUpdate& update) {
    std::string line = FormatProgressBar(update, 30);
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void End() {
    if (drawn_) {
      std::fprintf(stderr, "\n");
      drawn_ = false;
    }
  }

 private:
  bool enabled_;
  bool drawn_ = false;
};

// ---- Reports from stored results ----

// A channel to the collector that takes large answers (a long run's windows
// with their histograms run to megabytes).
std::shared_ptr<grpc::Channel> CollectorChannel(const std::string& address) {
  return MakeChannel(address, 256 * 1024 * 1024);
}

absl::StatusOr<v1::RunStats> FetchStats(v1::Collector::Stub* collector, const std::string& run_id) {
  v1::GetRunStatsRequest req;
  req.set_run_id(run_id);
  req.set_per_worker(true);
  req.set_windows(true);
  req.set_histograms(true);
  v1::RunStats stats;
  grpc::Status st = collector->GetRunStats(Ctx(60).get(), req, &stats);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("collector GetRunStats: ", st.error_message()));
  }
  return stats;
}

// The run as the orchestrator stored it, and its statistics as the collector
// stored them. Either may be missing (then a note says so), not both.
absl::StatusOr<ReportInput> FetchReportInput(const std::string& run_id, const Options& o) {
  ReportInput in;
  in.generated_at = absl::Now();
  auto orchestrator = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  v1::GetRunRequest req;
  req.set_id(run_id);
  v1::Run run;
  grpc::Status st = orchestrator->GetRun(Ctx().get(), req, &run);
  if (st.ok()) {
    in.run = run;
  } else if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
    in.notes.push_back(absl::StrCat("the orchestrator at ", o.orchestrator,
                                    " does not know this run: no spec, verdict or events"));
  } else {
    in.notes.push_back(absl::StrCat("the orchestrator at ", o.orchestrator,
                                    " was not reachable (", st.error_message(),
                                    "): no spec, verdict or events"));
  }
  auto collector = v1::Collector::NewStub(CollectorChannel(o.collector));
  absl::StatusOr<v1::RunStats> stats = FetchStats(collector.get(), run_id);
  if (stats.ok()) {
    in.stats = *std::move(stats);
  } else if (in.run.has_value() && in.run->has_stats() && !in.run->stats().run_id().empty()) {
    in.stats = in.run->stats();
    in.notes.push_back(absl::StrCat("the collector at ", o.collector, " did not answer (",
                                    stats.status().message(),
                                    "): totals only, no time series or distributions"));
  } else {
    return absl::Status(stats.status().code(),
                        absl::StrCat("no stored results for run ", run_id, ": ",
                                     stats.status().message(), " (collector ", o.collector, ")"));
  }
  return in;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text << std::flush;
    return absl::OkStatus();
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// Streams the run's per-request records into `path`; returns how many.
absl::StatusOr<uint64_t> WriteRecords(const std::string& run_id, const Options& o,
                                      const std::string& path) {
  auto collector = v1::Collector::NewStub(CollectorChannel(o.collector));
  const RecordsFormat format = RecordsFormatFromPath(path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  out << RecordsHeader(format);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  v1::GetRunRecordsRequest req;
  req.set_run_id(run_id);
  auto reader = collector->GetRunRecords(&ctx, req);
  v1::RequestRecords page;
  uint64_t n = 0;
  while (reader->Read(&page)) {
    for (const v1::RequestRecord& r : page.records()) {
      out << RecordLine(r, format);
      ++n;
    }
  }
  grpc::Status st = reader->Finish();
  out.close();
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("collector GetRunRecords: ", st.error_message()));
  }
  if (!out) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return n;
}

ReportFormat ChosenFormat(const Options& o, const std::string& path) {
  if (!o.format.empty()) {
    if (absl::StatusOr<ReportFormat> f = ParseReportFormat(o.format); f.ok()) {
      return *f;
    }
  }
  return ReportFormatFromPath(path).value_or(ReportFormat::kText);
}

// Writes the report (and the records) the flags ask for at the end of a run.
// Failing to is an error of its own (exit 2), after the run's own report.
int WriteEndOfRunOutputs(const std::string& run_id, const Options& o) {
  int rc = kExitOk;
  if (!o.report_file.empty()) {
    absl::StatusOr<ReportInput> in = FetchReportInput(run_id, o);
    absl::Status s = in.ok() ? WriteText(o.report_file,
                                         RenderReport(*in, ChosenFormat(Options(), o.report_file)))
                             : in.status();
    if (s.ok()) {
      LLMLOAD_LOG(kInfo, "Report written.").Kv("run_id", run_id).Kv("file", o.report_file);
    } else {
      std::fprintf(stderr, "llmload: writing the report failed: %s\n",
                   std::string(s.message()).c_str());
      rc = kExitUsage;
    }
  }
  if (!o.records_file.empty()) {
    absl::StatusOr<uint64_t> n = WriteRecords(run_id, o, o.records_file);
    if (n.ok()) {
      LLMLOAD_LOG(kInfo, "Per-request records written.")
          .Kv("run_id", run_id)
          .Kv("file", o.records_file)
          .Kv("records", *n);
    } else {
      std::fprintf(stderr, "llmload: writing the records failed: %s\n",
                   std::string(n.status().message()).c_str());
      rc = kExitUsage;
    }
  }
  return rc;
}

int CmdReport(const Options& o) {
  const std::string& run_id = o.positional[0];
  absl::StatusOr<ReportInput> in = FetchReportInput(run_id, o);
  if (!in.ok()) {
    std::fprintf(stderr, "llmload: %s\n", std::string(in.status().message()).c_str());
    return kExitUsage;
  }
  if (in->run.has_value() && !Terminal(in->run->state())) {
    in->notes.push_back(absl::StrCat("the run is still ", v1::RunState_Name(in->run->state()),
                                     ": these are its results so far"));
  }
  if (absl::Status s = WriteText(o.output, RenderReport(*in, ChosenFormat(o, o.output))); !s.ok()) {
    std::fprintf(stderr, "llmload: %s\n", std::string(s.message()).c_str());
    return kExitUsage;
  }
  if (!o.records_file.empty()) {
    absl::StatusOr<uint64_t> n = WriteRecords(run_id, o, o.records_file);
    if (!n.ok()) {
      std::fprintf(stderr, "llmload: %s\n", std::string(n.status().message()).c_str());
      return kExitUsage;
    }
    std::fprintf(stderr, "llmload: %llu per-request records written to %s\n",
                 static_cast<unsigned long long>(*n), o.records_file.c_str());
  }
  return kExitOk;
}

int CmdCompare(const Options& o) {
  auto collector = v1::Collector::NewStub(CollectorChannel(o.collector));
  std::vector<v1::RunStats> stats;
  for (const std::string& id : o.positional) {
    absl::StatusOr<v1::RunStats> s = FetchStats(collector.get(), id);
    if (!s.ok()) {
      std::fprintf(stderr, "llmload: run %s: %s\n", id.c_str(),
                   std::string(s.status().message()).c_str());
      return kExitUsage;
    }
    stats.push_back(*std::move(s));
  }
  CompareOptions opts;
  opts.max_regression_pct = o.max_regression_pct;
  opts.only = o.compare_only;
  const CompareResult r = Compare(stats[0], stats[1], opts);
  if (o.json || o.format == "json") {
    std::cout << CompareJson(r) << std::flush;
  } else {
    std::cout << FormatCompare(r) << std::flush;
  }
  return r.failed ? kExitRunFailed : kExitOk;
}

// Follows a run to its end, printing progress (a bar on a terminal, plain
// lines otherwise), then prints the report.
int FollowRun(Stub* stub, const std::string& run_id, const Options& o) {
  const absl::Time start = absl::Now();
  absl::Time last_print = absl::InfinitePast();
  const absl::Duration period = absl::Seconds(o.progress_interval_seconds);
  v1::Run last;
  bool terminal = false;
  ProgressBar bar;
  // Follow the WatchRun stream. When it ends before the run does (the
  // orchestrator restarted, a link broke), watch again after a jittered
  // backoff: runs survive orchestrator restarts, so the watch does too. Give
  // up after kGiveUp without a word from the orchestrator; an orchestrator
  // without WatchRun is polled instead.
  constexpr absl::Duration kGiveUp = absl::Seconds(60);
  Backoff backoff(absl::Milliseconds(200), absl::Seconds(5), BackoffSeed(&last));
  absl::Time last_contact = absl::Now();
  bool poll = false;
  while (!terminal && !poll) {
    grpc::ClientContext ctx;
    v1::WatchRunRequest req;
    req.set_id(run_id);
    auto reader = stub->WatchRun(&ctx, req);
    v1::RunUpdate update;
    bool timed_out = false;
    while (reader->Read(&update)) {
      last_contact = absl::Now();
      backoff.Reset();
      last = update.run();
      terminal = Terminal(last.state());
      if (!terminal && bar.enabled()) {
        bar.Draw(update);
      } else if (!terminal && absl::Now() - last_print >= period) {
        last_print = absl::Now();
        LLMLOAD_LOG(kInfo, FormatProgress(update));
      }
      if (terminal) {
        break;
      }
      if (o.timeout_seconds > 0 && absl::Now() - start > absl::Seconds(o.timeout_seconds)) {
        timed_out = true;
        break;
      }
    }
    if (terminal || timed_out) {
      ctx.TryCancel();
    }
    const grpc::Status st = reader->Finish();
    bar.End();
    if (terminal || timed_out) {
      break;
    }
    if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      poll = true;
      break;
    }
    if (st.error_code() == grpc::StatusCode::NOT_FOUND ||
        st.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      return RpcError("WatchRun", st);
    }
    if (absl::Now() - last_contact > kGiveUp) {
      std::fprintf(stderr, "llmload: no word from the orchestrator for %.0f s while watching run "
                           "%s: %s\n",
                   absl::ToDoubleSeconds(kGiveUp), run_id.c_str(), st.error_message().c_str());
      return kExitRunFailed;
    }
    const absl::Duration delay = backoff.Next();
    LLMLOAD_LOG(kInfo, "Watch stream ended before the run; watching again.")
        .Kv("run_id", run_id)
        .Kv("error", st.error_message())
        .Kv("delay_ms", absl::ToInt64Milliseconds(delay));
    absl::SleepFor(delay);
  }
  while (!terminal) {
    if (o.timeout_seconds > 0 && absl::Now() - start > absl::Seconds(o.timeout_seconds)) {
      std::fprintf(stderr, "llmload: gave up waiting for run %s after %.0f s\n", run_id.c_str(),
                   o.timeout_seconds);
      return kExitRunFailed;
    }
    v1::GetRunRequest req;
    req.set_id(run_id);
    grpc::Status st = stub->GetRun(Ctx().get(), req, &last);
    if (!st.ok()) {
      return RpcError("GetRun", st);
    }
    terminal = Terminal(last.state());
    if (!terminal && absl::Now() - last_print >= period) {
      last_print = absl::Now();
      LLMLOAD_LOG(kInfo, FormatProgress(last, absl::ToDoubleSeconds(absl::Now() - start)));
    }
    if (!terminal) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  v1::GetRunRequest req;
  req.set_id(run_id);
  v1::Run final_run;
  grpc::Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    st = stub->GetRun(Ctx().get(), req, &final_run);
    if (st.ok() || st.error_code() != grpc::StatusCode::UNAVAILABLE) {
      break;
    }
    absl::SleepFor(backoff.Next());
  }
  if (!st.ok()) {
    return RpcError("GetRun", st);
  }
  PrintRun(final_run, o.json);
  if (final_run.state() == v1::COMPLETED && final_run.has_passed() && !final_run.passed()) {
    std::fprintf(stderr, "llmload: run %s completed but failed its thresholds\n",
                 run_id.c_str());
  }
  return RunPassed(final_run) ? kExitOk : kExitRunFailed;
}

absl::StatusOr<v1::RunSpec> SpecFromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  google::protobuf::util::JsonParseOptions opts;
  v1::StartRunRequest req;
  if (text.find("\"spec\"") != std::string::npos &&
      google::protobuf::util::JsonStringToMessage(text, &req, opts).ok()) {
    return req.spec();
  }
  v1::RunSpec spec;
  auto st = google::protobuf::util::JsonStringToMessage(text, &spec, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a RunSpec in proto JSON: ", st.ToString()));
  }
  return spec;
}

int StartAndFollow(Stub* stub, const v1::RunSpec& spec, const Options& o,
                   std::string* run_id = nullptr) {
  v1::StartRunRequest req;
  *req.mutable_spec() = spec;
  v1::Run run;
  grpc::Status st = stub->StartRun(Ctx().get(), req, &run);
  if (!st.ok()) {
    return RpcError("StartRun", st);
  }
  if (run_id != nullptr) {
    *run_id = run.id();
  }
  LLMLOAD_LOG(kInfo, "Run started.")
      .Kv("run_id", run.id())
      .Kv("workers", run.shards_size())
      .Kv("cycles_total", run.progress().cycles_total());
  if (o.detach) {
    std::cout << run.id() << std::endl;
    return kExitOk;
  }
  // Ctrl-C stops the run (partial results are kept). The watcher is joined
  // when this scope ends, before the caller's stub goes away.
  InterruptWatcher stop_on_interrupt(Interrupts(), [stub, run_id = run.id()] {
    std::fprintf(stderr, "Interrupted: stopping run %s (partial results are kept).\n",
                 run_id.c_str());
    v1::StopRunRequest req;
    req.set_id(run_id);
    v1::Run resp;
    (void)stub->StopRun(Ctx().get(), req, &resp);
  });
  return FollowRun(stub, run.id(), o);
}

int UsageError(const absl::Status& s) {
  std::fprintf(stderr, "llmload: %s\n", std::string(s.message()).c_str());
  return kExitUsage;
}

int CmdLocal(const Options& o) {
  // The spec is checked before anything starts, against the emulator's
  // endpoint for the protocol (its port is known only once it runs).
  if (absl::StatusOr<v1::RunSpec> spec =
          BuildRunSpec(o, EmulatorTargetUrl(o.protocol, "127.0.0.1:8080"));
      !spec.ok()) {
    return UsageError(spec.status());
  }
  // The local workers inherit this environment: a header it cannot fill
  // would fail every shard.
  for (const auto& [header, env] : o.headers_from_env) {
    if (std::getenv(env.c_str()) == nullptr) {
      return UsageError(absl::InvalidArgumentError(
          absl::StrCat("--header-from-env ", header, "=", env, ": the environment variable ", env,
                       " is not set (the local workers read it from this environment)")));
    }
  }
  LLMLOAD_LOG(kInfo, "Emulator starting.")
      .Kv("protocol", v1::Protocol_Name(o.protocol))
      .Kv("num_clients", o.clients)
      .Kv("cycles_per_client", o.cycles)
      .Kv("response_length_words", o.length_words)
      .Kv("token_delay_seconds", o.delay_seconds)
      .Kv("max_concurrent", o.max_concurrent)
      .Kv("workers", o.workers);
  LocalCluster cluster(o);
  if (absl::Status s = cluster.Start(); !s.ok()) {
    std::fprintf(stderr, "llmload: local cluster failed to start: %s\n",
                 std::string(s.message()).c_str());
    cluster.Stop();
    return kExitUsage;
  }
  const std::string target_url = EmulatorTargetUrl(o.protocol, cluster.emulator_address());
  LLMLOAD_LOG(kInfo, "Local services ready.")
      .Kv("orchestrator", cluster.orchestrator_address())
      .Kv("emulator", cluster.emulator_url())
      .Kv("target", target_url)
      .Kv("metrics", absl::StrCat("http://127.0.0.1:", cluster.collector_metrics_port(), "/metrics"))
      .Kv("state_dir", cluster.state_dir());
  absl::StatusOr<v1::RunSpec> spec = BuildRunSpec(o, target_url);
  if (!spec.ok()) {
    cluster.Stop();
    return UsageError(spec.status());
  }
  auto stub = v1::Orchestrator::NewStub(MakeChannel(cluster.orchestrator_address()));
  std::string run_id;
  int rc = StartAndFollow(stub.get(), *spec, o, &run_id);
  if (!run_id.empty() && !o.detach) {
    // While the services still run: the report comes from what they stored.
    Options at = o;
    at.orchestrator = cluster.orchestrator_address();
    at.collector = cluster.collector_address();
    if (const int out = WriteEndOfRunOutputs(run_id, at); out != kExitOk && rc == kExitOk) {
      rc = out;
    }
  }
  cluster.Stop();
  // A service that died took its part of the run (or its results) with it:
  // say which, again after the report, and fail.
  const std::vector<LocalCluster::ChildFailure> failures = cluster.failures();
  for (const LocalCluster::ChildFailure& f : failures) {
    std::fprintf(stderr, "llmload: %s; its log: %s\n", f.Describe().c_str(), f.log.c_str());
  }
  if (!failures.empty() && rc == kExitOk) {
    rc = kExitRunFailed;
  }
  if (rc == kExitOk && !o.keep_state && o.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(cluster.state_dir(), ec);
  } else {
    LLMLOAD_LOG(kInfo, "Service logs and databases kept.").Kv("state_dir", cluster.state_dir());
  }
  return rc;
}

int CmdRun(const Options& o) {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  v1::RunSpec spec;
  if (!o.spec_file.empty()) {
    auto s = SpecFromFile(o.spec_file);
    if (!s.ok()) {
      std::fprintf(stderr, "llmload: %s\n", std::string(s.status().message()).c_str());
      return kExitUsage;
    }
    spec = *s;
    // Target flags given on the command line override the file's;
    // --threshold, --slo-* and --records add to it.
    ApplyFlagsToFileSpec(o, &spec);
    if (absl::Status v = ValidateSpecForCli(
            spec, [&o](const std::string& flag) { return o.given.count(flag) > 0; });
        !v.ok()) {
      return UsageError(absl::Status(v.code(), absl::StrCat(o.spec_file, ": ", v.message())));
    }
  } else {
    absl::StatusOr<v1::RunSpec> built = BuildRunSpec(o, o.urls);
    if (!built.ok()) {
      return UsageError(built.status());
    }
    spec = *std::move(built);
  }
  std::string run_id;
  int rc = StartAndFollow(stub.get(), spec, o, &run_id);
  if (!run_id.empty() && !o.detach) {
    if (const int out = WriteEndOfRunOutputs(run_id, o); out != kExitOk && rc == kExitOk) {
      rc = out;
    }
  }
  return rc;
}

int CmdGet(const Options& o) {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  v1::GetRunRequest req;
  req.set_id(o.positional[0]);
  v1::Run run;
  grpc::Status st = stub->GetRun(Ctx().get(), req, &run);
  if (!st.ok()) {
    return RpcError("GetRun", st);
  }
  PrintRun(run, o.json);
  return kExitOk;
}

int CmdList(const Options& o) {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  v1::ListRunsRequest req;
  req.set_limit(o.limit);
  v1::ListRunsResponse resp;
  grpc::Status st = stub->ListRuns(Ctx().get(), req, &resp);
  if (!st.ok()) {
    return RpcError("ListRuns", st);
  }
  if (o.json) {
    std::cout << ToJson(resp) << std::endl;
    return kExitOk;
  }
  for (const auto& run : resp.runs()) {
    std::cout << FormatRunLine(run) << "\n";
  }
  return kExitOk;
}

int CmdStop(const Options& o) {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  v1::StopRunRequest req;
  req.set_id(o.positional[0]);
  v1::Run run;
  grpc::Status st = stub->StopRun(Ctx().get(), req, &run);
  if (!st.ok()) {
    return RpcError("StopRun", st);
  }
  std::cout << "Stop requested. [run_id=" << run.id()
            << ", state=" << v1::RunState_Name(run.state()) << "]" << std::endl;
  return kExitOk;
}

int CmdWatch(const Options& o) {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  return FollowRun(stub.get(), o.positional[0], o);
}

int CmdWorkers(const Options& o) {
  auto stub = v1::Orchestrator::NewStub(MakeChannel(o.orchestrator));
  v1::ListWorkersResponse resp;
  grpc::Status st = stub->ListWorkers(Ctx().get(), v1::ListWorkersRequest(), &resp);
  if (!st.ok()) {
    return RpcError("ListWorkers", st);
  }
  if (o.json) {
    std::cout << ToJson(resp) << std::endl;
    return kExitOk;
  }
  for (const auto& w : resp.workers()) {
    std::cout << absl::StrCat(w.id(), " capacity=", w.capacity(), " threads=", w.threads(),
                              " active_sessions=", w.active_sessions(), " cpu=",
                              static_cast<int>(w.cpu_percent()), "% loop_lag_ms=", w.loop_lag_ms())
              << "\n";
  }
  return kExitOk;
}

// The bearer token (LLMLOAD_TOKEN or --token-file) and TLS of every call.
absl::Status ConfigureLinks(const Options& o) {
  const char* literal = std::getenv("LLMLOAD_TOKEN");
  auto token = TokenSource::Create("--token-file", literal != nullptr ? literal : "",
                                   o.token_file);
  if (!token.ok()) {
    return token.status();
  }
  ClientLinks links;
  links.tls.ca_file = o.tls_ca_file;
  links.tls.cert_file = o.tls_cert_file;
  links.tls.key_file = o.tls_key_file;
  links.tls.server_name = o.tls_server_name;
  if (absl::Status s = CheckTlsFiles(links.tls, '-'); !s.ok()) {
    return s;
  }
  if ((*token)->configured()) {
    links.token = *std::move(token);
  }
  return ConfigureClientLinks(std::move(links));
}

}  // namespace
}  // namespace llmload::cli

int main(int argc, char** argv) {
  using namespace llmload::cli;
  llmload::InstallCrashHandler(argv[0]);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "health") {  // the container probe: own flags, see health.h
    return HealthMain({args.begin() + 1, args.end()});
  }
  auto options = ParseArgs(args, [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v == nullptr ? std::nullopt : std::optional<std::string>(v);
  });
  if (!options.ok()) {
    std::fprintf(stderr, "llmload: %s\n\n%s", std::string(options.status().message()).c_str(),
                 UsageText().c_str());
    return kExitUsage;
  }
  llmload::InitLogging("llmload", llmload::LogLevel::kInfo, false);
  // SIGINT/SIGTERM: stop the run (keeping partial results), then exit.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread([signals]() mutable {
    int sig = 0;
    while (sigwait(&signals, &sig) == 0) {
      if (Interrupts().Raise() > 1) {
        std::_Exit(130);  // second interrupt: leave at once
      }
    }
  }).detach();

  const std::string& cmd = options->command;
  if (cmd == "local" || cmd == "run") {
    if (absl::Status s = ReadPromptsFile(&*options); !s.ok()) {
      return UsageError(s);
    }
  }
  // `local` talks to the plaintext services it starts; every other command
  // to services that may want a token and TLS.
  if (cmd != "local" && cmd != "help") {
    if (absl::Status s = ConfigureLinks(*options); !s.ok()) {
      std::fprintf(stderr, "llmload: %s\n", std::string(s.message()).c_str());
      return kExitUsage;
    }
  }
  if (cmd == "help") {
    std::cout << UsageText();
    return kExitOk;
  }
  if (cmd == "local") {
    return CmdLocal(*options);
  }
  if (cmd == "run") {
    return CmdRun(*options);
  }
  if (cmd == "get") {
    return CmdGet(*options);
  }
  if (cmd == "list") {
    return CmdList(*options);
  }
  if (cmd == "stop") {
    return CmdStop(*options);
  }
  if (cmd == "watch") {
    return CmdWatch(*options);
  }
  if (cmd == "workers") {
    return CmdWorkers(*options);
  }
  if (cmd == "report") {
    return CmdReport(*options);
  }
  if (cmd == "compare") {
    return CmdCompare(*options);
  }
  std::cout << UsageText();
  return kExitUsage;
}
