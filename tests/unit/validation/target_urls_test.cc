#include "lib/validation/target_urls.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace llmload::validation {
namespace {

TEST(TargetUrlsTest, UrlAloneIsTheOnlyTarget) {
  v1::Target t;
  t.set_url("http://127.0.0.1:8080");
  const std::vector<TargetUrl> urls = TargetUrls(t);
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0].path, "spec.target.url");
  EXPECT_EQ(*urls[0].url, "http://127.0.0.1:8080");
  // Nothing given: still one (empty) entry, for validation to name.
  EXPECT_EQ(*TargetUrls(v1::Target()).at(0).url, "");
}

TEST(TargetUrlsTest, UrlsAreNamedByIndexInOrder) {
  v1::Target t;
  t.add_urls("http://a:1");
  t.add_urls("http://b:2");
  t.add_urls("http://c:3");
  const std::vector<TargetUrl> urls = TargetUrls(t);
  ASSERT_EQ(urls.size(), 3u);
  EXPECT_EQ(urls[2].path, "spec.target.urls[2]");
  EXPECT_EQ(*urls[2].url, "http://c:3");
  EXPECT_EQ(*urls[0].url, "http://a:1");
}

TEST(TargetUrlsTest, ClientsSpreadEvenlyAndDeterministically) {
  // 9 clients over 3 URLs: exactly 3 each, client i on urls[i % 3].
  std::map<size_t, int> per_url;
  for (int64_t client = 0; client < 9; ++client) {
    const size_t i = UrlIndexForClient(client, 3);
    EXPECT_EQ(i, static_cast<size_t>(client % 3));
    ++per_url[i];
  }
  EXPECT_EQ(per_url, (std::map<size_t, int>{{0, 3}, {1, 3}, {2, 3}}));
  // Any contiguous range of clients (a worker's shard) differs by at most
  // one session between URLs.
  for (int64_t begin : {0, 5, 1000001}) {
    for (int64_t count : {1, 4, 7, 100}) {
      std::map<size_t, int> shard;
      for (int64_t c = begin; c < begin + count; ++c) {
        ++shard[UrlIndexForClient(c, 4)];
      }
      int lo = count, hi = 0;
      for (size_t i = 0; i < 4; ++i) {
        lo = std::min(lo, shard[i]);
        hi = std::max(hi, shard[i]);
      }
      EXPECT_LE(hi - lo, 1) << begin << "+" << count;
    }
  }
  EXPECT_EQ(UrlIndexForClient(12345, 1), 0u);
  EXPECT_EQ(UrlIndexForClient(7, 0), 0u);
  EXPECT_EQ(UrlIndexForClient(-1, 3), 0u);
  EXPECT_EQ(UrlIndexForClient(int64_t{1} << 40, 3), static_cast<size_t>((int64_t{1} << 40) % 3));
}

}  // namespace
}  // namespace llmload::validation
