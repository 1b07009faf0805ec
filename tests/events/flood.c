/* A UDP flood of an exact number of datagrams: sendmmsg batches on one CPU, at a given rate.
 *
 *   flood DST_IPV4 PORT COUNT RATE CPU
 *
 * RATE is datagrams per second (0: as fast as the stack takes them); CPU pins the sender
 * (-1: not pinned).  Prints "sent N cpu_ns C wall_ns W" (N datagrams the stack accepted, the
 * CPU time the sender used, receive processing in its context included, and the time it
 * took) and exits 0, or one line on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(long long ns)
{
	struct timespec ts = { ns / 1000000000LL, ns % 1000000000LL };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: flood DST_IPV4 PORT COUNT RATE CPU\n");
		return 1;
	}
	long long count = atoll(argv[3]), rate = atoll(argv[4]);
	int cpu = atoi(argv[5]);
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "flood: not an IPv4 address: %s\n", argv[1]);
		return 1;
	}
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			perror("flood: sched_setaffinity");
			return 1;
		}
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("flood: socket");
		return 1;
	}
	static char payload[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr msgs[BATCH];
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = &payload[i];
		iov[i].iov_len = 1;
		msgs[i].msg_hdr.msg_name = &dst;
		msgs[i].msg_hdr.msg_namelen = sizeof(dst);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	/* at a rate, batches small enough that the flood stays smooth (about 2000 a second) */
	long long batch = rate ? rate / 2000 : BATCH;
	batch = batch < 1 ? 1 : batch > BATCH ? BATCH : batch;
	long long sent = 0, start = now_ns();
	while (sent < count) {
		int n = (int)(count - sent < batch ? count - sent : batch);
		int done = sendmmsg(fd, msgs, n, 0);
		if (done < 0) {
			if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
				continue;
			perror("flood: sendmmsg");
			return 1;
		}
		sent += done;
		if (rate)
			sleep_until(start + sent * 1000000000LL / rate);
	}
	long long wall = now_ns() - start;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long long cpu_ns = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
			(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
	printf("sent %lld cpu_ns %lld wall_ns %lld\n", sent, cpu_ns, wall);
	return 0;
}
