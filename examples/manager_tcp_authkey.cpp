// A Manager served over TCP with an authkey, reached by clients that know the key (seed 004
// "Managers": BaseManager(address, authkey), start(), connect()).
//
// Python:  class QueueManager(BaseManager): pass
//          QueueManager.register('get_queue', callable=lambda: queue)
//          m = QueueManager(address=('', 50000), authkey=b'abracadabra'); m.start()
//          # another process, maybe on another machine:
//          m = QueueManager(address=('server', 50000), authkey=b'abracadabra'); m.connect()
//          m.get_queue().put('hello')
//
// Named objects replace register(): any client asking for Queue<std::string>(0, "get_queue")
// gets the same queue. A client with the wrong key is refused before any request is served.
// Port 0 picks a free port (read address()), so the example never collides with another run.
#include <mproc/mproc.hpp>

#include <cstdio>
#include <string>

void client(std::string address, std::string authkey, int i) {
  auto m = mproc::Manager::connect(address, authkey);  // m.connect()
  auto queue = m.Queue<std::string>(0, "get_queue");   // m.get_queue()
  queue.put("hello from client " + std::to_string(i));
}

void intruder(std::string address) {
  try {
    mproc::Manager::connect(address, "not the key");
    mproc::exit(1);
  } catch (const mproc::AuthenticationError& e) {
    std::printf("a client with the wrong key was refused: %s\n", e.what());
    mproc::exit(0);
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::ManagerOptions options;
  options.address = "tcp:127.0.0.1:0";
  options.authkey = "abracadabra";
  mproc::Manager server(options);  // QueueManager(address, authkey).start()
  auto queue = server.Queue<std::string>(0, "get_queue");
  std::printf("manager listening on tcp:127.0.0.1:<port>\n");

  bool ok = true;
  for (int i = 0; i < 2; ++i) {
    mproc::Process p(client, server.address(), server.authkey(), i);
    p.start();
    p.join();
    ok = ok && p.exitcode() == 0;
  }
  mproc::Process bad(intruder, server.address());
  bad.start();
  bad.join();
  ok = ok && bad.exitcode() == 0;

  while (!queue.empty()) std::printf("got: %s\n", queue.get().c_str());
  server.shutdown();
  std::printf("server shut down\n");
  return ok ? 0 : 1;
}
