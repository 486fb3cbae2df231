#include "common/file_utils.hpp"
#include "userns/id_mapping.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <tuple>

namespace fs = std::filesystem;
using sarus::userns::SubordinateRange;
using Triples = std::vector<std::tuple<unsigned, unsigned, unsigned>>;

namespace {

Triples triples(const std::vector<sarus::IdMap>& maps) {
    Triples out;
    for (const auto& m : maps) {
        out.emplace_back(m.containerId, m.hostId, m.size);
    }
    return out;
}

class SubordinateRangeTest : public ::testing::Test {
protected:
    sarus::TempDirectory dir{fs::temp_directory_path(), "id-mapping-test"};

    fs::path file(const std::string& content) {
        auto path = dir.path() / "subuid";
        std::ofstream(path) << content;
        return path;
    }
};

sarus::Identity caller(uid_t uid, gid_t gid) {
    sarus::Identity id;
    id.uid = uid;
    id.gid = gid;
    id.userName = "alice";
    return id;
}

}  // namespace

// ---------------------------------------------------------------- findSubordinateRange

TEST_F(SubordinateRangeTest, FindsByName) {
    auto range = sarus::userns::findSubordinateRange(file("bob:100000:65536\nalice:165536:65536\n"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 165536u);
    EXPECT_EQ(range->count, 65536u);
}

TEST_F(SubordinateRangeTest, FindsByNumericId) {
    auto range = sarus::userns::findSubordinateRange(file("1000:200000:1000\n"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 200000u);
    EXPECT_EQ(range->count, 1000u);
}

TEST_F(SubordinateRangeTest, FirstMatchWins) {
    auto range = sarus::userns::findSubordinateRange(
        file("alice:300000:10\n1000:400000:20\nalice:500000:30\n"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 300000u);
    EXPECT_EQ(range->count, 10u);
}

TEST_F(SubordinateRangeTest, NumericEntryBeforeNameEntryWins) {
    auto range = sarus::userns::findSubordinateRange(file("1000:400000:20\nalice:300000:10\n"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 400000u);
}

TEST_F(SubordinateRangeTest, NameMustMatchExactly) {
    EXPECT_FALSE(sarus::userns::findSubordinateRange(file("alice2:1:2\nalic:3:4\n10000:5:6\n"), "alice", 1000));
}

TEST_F(SubordinateRangeTest, MalformedLinesAreSkipped) {
    auto range = sarus::userns::findSubordinateRange(
        file("alice\nalice:100000\nalice:abc:65536\nalice:100000:xyz\nalice::5\nalice:700000:5\n"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 700000u);
    EXPECT_EQ(range->count, 5u);
}

TEST_F(SubordinateRangeTest, NumbersWithSignsGarbageOrOverflowAreMalformed) {
    auto range = sarus::userns::findSubordinateRange(
        file("alice:-5:65536\nalice:100000:-1\nalice:100000x:5\nalice:100000:65536 junk\n"
             "alice:4294967296:5\nalice: 100000:5\nalice:600000:9\n"),
        "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 600000u);
    EXPECT_EQ(range->count, 9u);
}

TEST_F(SubordinateRangeTest, ZeroCountIsSkipped) {
    auto range = sarus::userns::findSubordinateRange(file("alice:100000:0\nalice:800000:7\n"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 800000u);
    EXPECT_EQ(range->count, 7u);
}

TEST_F(SubordinateRangeTest, NoEntryForUser) {
    EXPECT_FALSE(sarus::userns::findSubordinateRange(file("bob:100000:65536\n"), "alice", 1000));
}

TEST_F(SubordinateRangeTest, MissingFileMeansNoRange) {
    EXPECT_FALSE(sarus::userns::findSubordinateRange(dir.path() / "absent", "alice", 1000));
}

TEST_F(SubordinateRangeTest, LastLineWithoutNewline) {
    auto range = sarus::userns::findSubordinateRange(file("bob:1:2\nalice:900000:65536"), "alice", 1000);
    ASSERT_TRUE(range);
    EXPECT_EQ(range->start, 900000u);
}

// ---------------------------------------------------------------- keepIdMap

TEST(KeepIdMap, IdBelowRangeSize) {
    EXPECT_EQ(triples(sarus::userns::keepIdMap(1000, {100000, 65536})),
              (Triples{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}}));
}

TEST(KeepIdMap, IdAboveRangeSizeMapsWholeRangeBelow) {
    EXPECT_EQ(triples(sarus::userns::keepIdMap(70000, {100000, 65536})),
              (Triples{{0, 100000, 65536}, {70000, 70000, 1}}));
}

TEST(KeepIdMap, IdEqualToRangeSize) {
    EXPECT_EQ(triples(sarus::userns::keepIdMap(10, {500, 10})), (Triples{{0, 500, 10}, {10, 10, 1}}));
}

TEST(KeepIdMap, IdZeroHasNothingBelow) {
    EXPECT_EQ(triples(sarus::userns::keepIdMap(0, {100000, 100})), (Triples{{0, 0, 1}, {1, 100000, 100}}));
}

TEST(KeepIdMap, TotalSizeIsRangePlusOne) {
    unsigned total = 0;
    for (const auto& m : sarus::userns::keepIdMap(1234, {200000, 65536})) {
        total += m.size;
    }
    EXPECT_EQ(total, 65537u);
}

// ---------------------------------------------------------------- planIdMapping

TEST(PlanIdMapping, KeepIdWithBothRanges) {
    auto plan = sarus::userns::planIdMapping(caller(1000, 1001), SubordinateRange{100000, 65536},
                                             SubordinateRange{200000, 5000});
    EXPECT_TRUE(plan.keepId);
    EXPECT_EQ(triples(plan.uidMap), (Triples{{0, 100000, 1000}, {1000, 1000, 1}, {1001, 101000, 64536}}));
    EXPECT_EQ(triples(plan.gidMap), (Triples{{0, 200000, 1001}, {1001, 1001, 1}, {1002, 201001, 3999}}));
    EXPECT_TRUE(plan.nestedUidMap.empty());
    EXPECT_TRUE(plan.nestedGidMap.empty());
    EXPECT_EQ(plan.callerUidInside, 1000u);
    EXPECT_EQ(plan.callerGidInside, 1001u);
}

TEST(PlanIdMapping, SingleIdWithoutRanges) {
    auto plan = sarus::userns::planIdMapping(caller(1000, 1001), std::nullopt, std::nullopt);
    EXPECT_FALSE(plan.keepId);
    EXPECT_EQ(triples(plan.uidMap), (Triples{{0, 1000, 1}}));
    EXPECT_EQ(triples(plan.gidMap), (Triples{{0, 1001, 1}}));
    EXPECT_EQ(triples(plan.nestedUidMap), (Triples{{1000, 0, 1}}));
    EXPECT_EQ(triples(plan.nestedGidMap), (Triples{{1001, 0, 1}}));
    EXPECT_EQ(plan.callerUidInside, 0u);
    EXPECT_EQ(plan.callerGidInside, 0u);
}

TEST(PlanIdMapping, SingleIdWhenOnlySubuidExists) {
    auto plan = sarus::userns::planIdMapping(caller(1000, 1001), SubordinateRange{100000, 65536}, std::nullopt);
    EXPECT_FALSE(plan.keepId);
    EXPECT_EQ(triples(plan.uidMap), (Triples{{0, 1000, 1}}));
    EXPECT_EQ(triples(plan.nestedUidMap), (Triples{{1000, 0, 1}}));
}

TEST(PlanIdMapping, SingleIdWhenOnlySubgidExists) {
    auto plan = sarus::userns::planIdMapping(caller(1000, 1001), std::nullopt, SubordinateRange{100000, 65536});
    EXPECT_FALSE(plan.keepId);
    EXPECT_EQ(triples(plan.gidMap), (Triples{{0, 1001, 1}}));
    EXPECT_EQ(triples(plan.nestedGidMap), (Triples{{1001, 0, 1}}));
}
