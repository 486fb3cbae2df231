#include "common/error.hpp"
#include "runtime/mount_options.hpp"

#include <gtest/gtest.h>

#include <functional>

namespace {

std::string errorOf(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const sarus::Error& e) {
        return e.what();
    }
    return "";
}

std::string mountError(const std::string& text) {
    return errorOf([&] { sarus::parseMount(text); });
}

std::string deviceError(const std::string& text) {
    return errorOf([&] { sarus::parseDevice(text); });
}

}  // namespace

// ---------------------------------------------------------------- normalizeAbsolutePath

TEST(NormalizeAbsolutePath, CollapsesSlashesAndDots) {
    EXPECT_EQ(sarus::normalizeAbsolutePath("//a///b/./c/"), "/a/b/c");
}

TEST(NormalizeAbsolutePath, DotDotRemovesPreviousComponent) {
    EXPECT_EQ(sarus::normalizeAbsolutePath("/a/b/../c/.."), "/a");
}

TEST(NormalizeAbsolutePath, DotDotNeverGoesAboveRoot) {
    EXPECT_EQ(sarus::normalizeAbsolutePath("/../../x"), "/x");
    EXPECT_EQ(sarus::normalizeAbsolutePath("/a/../../.."), "/");
}

TEST(NormalizeAbsolutePath, RootAndEmpty) {
    EXPECT_EQ(sarus::normalizeAbsolutePath("/"), "/");
    EXPECT_EQ(sarus::normalizeAbsolutePath(""), "/");
    EXPECT_EQ(sarus::normalizeAbsolutePath("/."), "/");
}

TEST(NormalizeAbsolutePath, DotsInsideNamesAreKept) {
    EXPECT_EQ(sarus::normalizeAbsolutePath("/a/..b/.c/..."), "/a/..b/.c/...");
}

// ---------------------------------------------------------------- parseMount

TEST(ParseMount, ShortKeys) {
    auto m = sarus::parseMount("type=bind,src=/host/data,dst=/data");
    EXPECT_EQ(m.source, "/host/data");
    EXPECT_EQ(m.destination, "/data");
    EXPECT_FALSE(m.readonly);
}

TEST(ParseMount, LongKeysAndReadonly) {
    auto m = sarus::parseMount("type=bind,source=/a,destination=/b,readonly");
    EXPECT_EQ(m.source, "/a");
    EXPECT_EQ(m.destination, "/b");
    EXPECT_TRUE(m.readonly);
}

TEST(ParseMount, TargetAlias) {
    auto m = sarus::parseMount("type=bind,source=/a,target=/t");
    EXPECT_EQ(m.destination, "/t");
}

TEST(ParseMount, OrderOfOptionsDoesNotMatter) {
    auto m = sarus::parseMount("readonly,dst=/d,src=/s,type=bind");
    EXPECT_EQ(m.source, "/s");
    EXPECT_EQ(m.destination, "/d");
    EXPECT_TRUE(m.readonly);
}

TEST(ParseMount, ReadonlyWhateverItsValueAsInSarus) {
    EXPECT_TRUE(sarus::parseMount("type=bind,src=/s,dst=/d,readonly=true").readonly);
    EXPECT_TRUE(sarus::parseMount("type=bind,src=/s,dst=/d,readonly=no").readonly);
}

TEST(ParseMount, RoIsNotAnOptionOfSarus) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=/d,ro"),
              "Invalid mount request 'type=bind,src=/s,dst=/d,ro': 'ro' is not a valid bind mount option");
}

TEST(ParseMount, DestinationIsNormalisedSourceIsNot) {
    auto m = sarus::parseMount("type=bind,src=/s//x/,dst=/d//e/./f/");
    EXPECT_EQ(m.source, "/s//x/");
    EXPECT_EQ(m.destination, "/d/e/f");
}

TEST(ParseMount, TwoNamesOfTheSourceOrDestinationAreRefused) {
    EXPECT_EQ(mountError("type=bind,src=/a,source=/b,dst=/c"),
              "Invalid mount request 'type=bind,src=/a,source=/b,dst=/c': multiple formats used to specify mount "
              "source. Use either 'source' or 'src'.");
    EXPECT_EQ(mountError("type=bind,src=/a,dst=/c,target=/d"),
              "Invalid mount request 'type=bind,src=/a,dst=/c,target=/d': multiple formats used to specify mount "
              "destination. Use one of 'destination', 'dst' or 'target'.");
}

TEST(ParseMount, BindPropagationIsNotAnOptionOfSarus17) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=/d,bind-propagation=rslave"),
              "Invalid mount request 'type=bind,src=/s,dst=/d,bind-propagation=rslave': "
              "'bind-propagation' is not a valid bind mount option");
}

TEST(ParseMount, UnknownOptionIsNamed) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=/d,size=10"),
              "Invalid mount request 'type=bind,src=/s,dst=/d,size=10': 'size' is not a valid bind mount option");
}

TEST(ParseMount, MissingType) {
    EXPECT_EQ(mountError("src=/s,dst=/d"),
              "Invalid mount request 'src=/s,dst=/d': 'type' must be specified");
}

TEST(ParseMount, EmptyTextReportsMissingType) {
    EXPECT_EQ(mountError(""), "Invalid mount request '': 'type' must be specified");
}

TEST(ParseMount, UnsupportedType) {
    EXPECT_EQ(mountError("type=volume,src=/s,dst=/d"),
              "Invalid mount request 'type=volume,src=/s,dst=/d': 'volume' is not a valid mount type");
}

TEST(ParseMount, MissingSource) {
    EXPECT_EQ(mountError("type=bind,dst=/d"),
              "Invalid mount request 'type=bind,dst=/d': no source specified. Use either 'source' or 'src'.");
}

TEST(ParseMount, EmptySource) {
    EXPECT_EQ(mountError("type=bind,src=,dst=/d"), "Invalid mount request 'type=bind,src=,dst=/d': source is empty");
}

TEST(ParseMount, MissingDestination) {
    EXPECT_EQ(mountError("type=bind,src=/s"),
              "Invalid mount request 'type=bind,src=/s': no destination specified. "
              "Use either 'destination', 'dst' or 'target'.");
}

TEST(ParseMount, RelativeSource) {
    EXPECT_EQ(mountError("type=bind,src=data,dst=/d"),
              "Invalid mount request 'type=bind,src=data,dst=/d': source must be an absolute path");
}

TEST(ParseMount, RelativeDestination) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=d"),
              "Invalid mount request 'type=bind,src=/s,dst=d': destination must be an absolute path");
}

TEST(ParseMount, DestinationRootIsRefused) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=/"),
              "Invalid mount request 'type=bind,src=/s,dst=/': cannot mount over the container's root directory");
}

TEST(ParseMount, DestinationNormalisingToRootIsRefused) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=/a/.."),
              "Invalid mount request 'type=bind,src=/s,dst=/a/..': cannot mount over the container's root directory");
}

TEST(ParseMount, TrailingCommaIsAnEmptyUnknownOption) {
    EXPECT_EQ(mountError("type=bind,src=/s,dst=/d,"),
              "Invalid mount request 'type=bind,src=/s,dst=/d,': '' is not a valid bind mount option");
}

// ---------------------------------------------------------------- parseDevice

TEST(ParseDevice, HostOnly) {
    auto d = sarus::parseDevice("/dev/fuse");
    EXPECT_EQ(d.source, "/dev/fuse");
    EXPECT_EQ(d.destination, "/dev/fuse");
    EXPECT_EQ(d.access, "rwm");
}

TEST(ParseDevice, HostAndAccess) {
    auto d = sarus::parseDevice("/dev/fuse:rw");
    EXPECT_EQ(d.source, "/dev/fuse");
    EXPECT_EQ(d.destination, "/dev/fuse");
    EXPECT_EQ(d.access, "rw");
}

TEST(ParseDevice, HostAndContainerPath) {
    auto d = sarus::parseDevice("/dev/nvidia0:/dev/gpu");
    EXPECT_EQ(d.source, "/dev/nvidia0");
    EXPECT_EQ(d.destination, "/dev/gpu");
    EXPECT_EQ(d.access, "rwm");
}

TEST(ParseDevice, HostContainerAndAccess) {
    auto d = sarus::parseDevice("/dev/nvidia0:/dev//gpu/:m");
    EXPECT_EQ(d.source, "/dev/nvidia0");
    EXPECT_EQ(d.destination, "/dev/gpu");
    EXPECT_EQ(d.access, "m");
}

TEST(ParseDevice, AccessLettersInAnyOrder) {
    EXPECT_EQ(sarus::parseDevice("/dev/x:mwr").access, "mwr");
    EXPECT_EQ(sarus::parseDevice("/dev/x:/dev/y:wr").access, "wr");
}

// Sarus's messages (its test_error_messages.py).
const std::string rule = ". Device access must be entered as a combination of 'rwm' characters, with no repetitions";

TEST(ParseDevice, RepeatedAccessLetterIsRejected) {
    EXPECT_EQ(deviceError("/dev/x:/dev/y:rr"),
              "Invalid device request '/dev/x:/dev/y:rr': Input string for device access 'rr' has repeated characters" +
                  rule);
}

TEST(ParseDevice, BadAccessLetter) {
    EXPECT_EQ(deviceError("/dev/x:/dev/y:rx"),
              "Invalid device request '/dev/x:/dev/y:rx': Input string for device access 'rx' contains an invalid "
              "character" + rule);
}

TEST(ParseDevice, ASecondFieldNotStartingWithSlashIsTheAccess) {
    EXPECT_EQ(deviceError("/dev/x:rx"),
              "Invalid device request '/dev/x:rx': Input string for device access 'rx' contains an invalid character" +
                  rule);
    EXPECT_EQ(deviceError("/dev/x:rwmm"),
              "Invalid device request '/dev/x:rwmm': Input string for device access 'rwmm' is longer than 3 "
              "characters" + rule);
}

TEST(ParseDevice, EmptyAccess) {
    EXPECT_EQ(deviceError("/dev/x:"), "Invalid device request '/dev/x:': Input string for device access is empty" + rule);
}

TEST(ParseDevice, RelativePaths) {
    EXPECT_EQ(deviceError("dev/x"), "Invalid device request 'dev/x': host device path 'dev/x' must be absolute");
    EXPECT_EQ(deviceError("/dev/x:dev/y:rw"),
              "Invalid device request '/dev/x:dev/y:rw': container device path 'dev/y' must be absolute");
}

TEST(ParseDevice, TooManyFields) {
    EXPECT_EQ(deviceError("/a:/b:r:w"), "Invalid device request '/a:/b:r:w': too many tokens provided. The format of "
                                        "the option value must be at most '<host device>:<container device>:<access>'");
}

TEST(ParseDevice, EmptyParts) {
    EXPECT_EQ(deviceError(""), "Invalid device request: no values provided");
    EXPECT_EQ(deviceError(":/dev/y"), "Invalid device request ':/dev/y': detected empty host device path");
    EXPECT_EQ(deviceError("/dev/x::rw"), "Invalid device request '/dev/x::rw': detected empty container device path");
}

// ---------------------------------------------------------------- checkUserMountDestination

TEST(CheckUserMountDestination, NoRulesAllowsEverything) {
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/etc/passwd", {}, "r"));
}

TEST(CheckUserMountDestination, NotAllowedPathIsExact) {
    sarus::UserMountRestrictions rules;
    rules.notAllowedPaths = {"/opt/"};
    EXPECT_EQ(errorOf([&] { sarus::checkUserMountDestination("/opt", rules, "type=bind,src=/s,dst=/opt"); }),
              "Invalid mount request 'type=bind,src=/s,dst=/opt': '/opt' is not allowed as mount destination");
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/opt/app", rules, "r"));
}

TEST(CheckUserMountDestination, PrefixBlocksThePathAndEverythingBelow) {
    sarus::UserMountRestrictions rules;
    rules.notAllowedPrefixesOfPath = {"/etc"};
    EXPECT_THROW(sarus::checkUserMountDestination("/etc", rules, "r"), sarus::Error);
    EXPECT_EQ(errorOf([&] { sarus::checkUserMountDestination("/etc/ssh/keys", rules, "r"); }),
              "Invalid mount request 'r': destination cannot be a subdirectory of '/etc'");
}

TEST(CheckUserMountDestination, PrefixMatchesWholeComponentsOnly) {
    sarus::UserMountRestrictions rules;
    rules.notAllowedPrefixesOfPath = {"/etc", "/opt/sarus/"};
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/etcetera", rules, "r"));
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/opt/sarusx", rules, "r"));
    EXPECT_THROW(sarus::checkUserMountDestination("/opt/sarus/bin", rules, "r"), sarus::Error);
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/opt", rules, "r"));
}

TEST(CheckUserMountDestination, RootPrefixBlocksEverything) {
    sarus::UserMountRestrictions rules;
    rules.notAllowedPrefixesOfPath = {"/"};
    EXPECT_EQ(errorOf([&] { sarus::checkUserMountDestination("/data", rules, "r"); }),
              "Invalid mount request 'r': destination cannot be a subdirectory of '/'");
}

TEST(CheckUserMountDestination, WhereAnImageLeadsARefusedPathIsRefusedToo) {
    sarus::UserMountRestrictions rules;
    rules.notAllowedPrefixesOfPath = {"/etc"};
    rules.notAllowedPaths = {"/opt"};
    // the image's /etc -> /mnt/u and /opt -> /x/opt; everything else is itself
    auto leadsTo = [](const std::string& path) -> std::optional<std::string> {
        if (path == "/etc") {
            return "/mnt/u";
        }
        if (path == "/opt") {
            return "/x/opt";
        }
        return path;
    };
    EXPECT_EQ(errorOf([&] { sarus::checkUserMountDestination("/mnt/u", rules, "r", leadsTo); }),
              "Invalid mount request 'r': '/etc' leads to /mnt/u in this image, and destination /mnt/u would "
              "mount over it there");
    EXPECT_THROW(sarus::checkUserMountDestination("/mnt/u/passwd", rules, "r", leadsTo), sarus::Error);
    EXPECT_THROW(sarus::checkUserMountDestination("/mnt", rules, "r", leadsTo), sarus::Error);
    EXPECT_THROW(sarus::checkUserMountDestination("/x/opt", rules, "r", leadsTo), sarus::Error);
    EXPECT_THROW(sarus::checkUserMountDestination("/x", rules, "r", leadsTo), sarus::Error);
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/x/opt/app", rules, "r", leadsTo));
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/mnt/v", rules, "r", leadsTo));
    EXPECT_NO_THROW(sarus::checkUserMountDestination("/data", rules, "r", [](const std::string&) {
        return std::optional<std::string>();
    }));
}
