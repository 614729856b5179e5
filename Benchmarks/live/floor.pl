#!/usr/bin/perl
# Benchmarks/live/floor.pl: the physical floor of a no-op apply, from what the no-op itself read.
#
#   floor.pl extract TRACE > OPS   turns `strace -f -y -e trace=%file,%desc` output of a no-op `workstation apply`
#                                  into the file system reads it made: one line per distinct operation, `open PATH`
#                                  (a file opened read-only; replayed as open + read to the end), `dir PATH` (a
#                                  directory opened; replayed as opendir + readdir to the end), `lstat PATH`,
#                                  `stat PATH`, `readlink PATH`. Writes (state.log, the lock) are left out: they
#                                  are the no-op's own bookkeeping, not reading the host.
#   floor.pl replay OPS            makes those calls, in that order, on one thread, and nothing else.
#
# The replay is the least any program must do to know the host is as the roster says: read the same bytes and
# inspect the same paths. Run it warm (right after a no-op apply), timed from outside like the apply.
use strict;
use warnings;

my $mode = shift // '';
if ($mode eq 'extract') {
  my (%seen, @ops);
  my $add = sub { my ($op, $p) = @_; return if $p =~ m{^/(proc/self|proc/thread-self|dev/)}; push @ops, "$op $p" unless $seen{"$op $p"}++ };
  # dirfd<path> + "name" -> absolute path
  my $join = sub {
    my ($dirfd, $name) = @_;
    return $name if $name =~ m{^/};
    my ($d) = $dirfd =~ /<(.*)>/;
    return undef unless defined $d;
    return $name eq '' ? $d : ($d eq '/' ? "/$name" : "$d/$name");
  };
  while (<>) {
    s/^\d+\s+//;
    if (/^openat\(([^,]+), "((?:[^"\\]|\\.)*)", ([A-Z_|]+)[^)]*\) = \d+<([^>]*)>/) {
      my ($dfd, $name, $flags, $path) = ($1, $2, $3, $4);
      next if $flags =~ /O_WRONLY|O_RDWR|O_CREAT|O_PATH/;
      $add->($flags =~ /O_DIRECTORY/ ? 'dir' : 'open', $path);
    } elsif (/^(newfstatat|statx)\(([^,]+), "((?:[^"\\]|\\.)*)", .*?(AT_SYMLINK_NOFOLLOW)?[^()]*\) = 0/) {
      my ($dfd, $name, $nofollow) = ($2, $3, $4);
      next if $name eq '' ;    # fstat of an open fd: part of reading it
      my $p = $join->($dfd, $name) // next;
      $add->(/AT_SYMLINK_NOFOLLOW/ ? 'lstat' : 'stat', $p);
    } elsif (/^(lstat|stat)\("((?:[^"\\]|\\.)*)"/) {
      $add->($1, $2);
    } elsif (/^readlinkat\(([^,]+), "((?:[^"\\]|\\.)*)"/) {
      my $p = $join->($1, $2) // next;
      $add->('readlink', $p);
    } elsif (/^readlink\("((?:[^"\\]|\\.)*)"/) {
      $add->('readlink', $1);
    }
  }
  print "$_\n" for @ops;
} elsif ($mode eq 'replay') {
  my $file = shift or die "usage: floor.pl replay OPS\n";
  open my $in, '<', $file or die "$file: $!\n";
  my @ops = map { chomp; [split / /, $_, 2] } <$in>;
  close $in;
  my ($bytes, $n) = (0, 0);
  for my $o (@ops) {
    my ($op, $p) = @$o;
    $n++;
    if ($op eq 'open') {
      open my $f, '<:raw', $p or next;
      local $/;
      my $d = <$f>;
      $bytes += length($d // '');
      close $f;
    } elsif ($op eq 'dir') {
      opendir my $d, $p or next;
      my @e = readdir $d;
      closedir $d;
    } elsif ($op eq 'lstat') {
      my @s = lstat $p;
    } elsif ($op eq 'stat') {
      my @s = stat $p;
    } elsif ($op eq 'readlink') {
      my $t = readlink $p;
    }
  }
  print STDERR "replayed $n operations, $bytes bytes read\n" if $ENV{FLOOR_VERBOSE};
} else {
  die "usage: floor.pl extract TRACE | floor.pl replay OPS\n";
}
