// File: ws_peer.h
//
// The target's side of one WebSocket in the session-driver tests: a
// scripted server thread sends and receives text messages on it with
// Beast's blocking calls.

#pragma once

#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

namespace llmload::worker {

using TestWs = boost::beast::websocket::stream<boost::asio::ip::tcp::socket>;

struct WsPeer {
  TestWs& ws;
  int index = 0;  // 0 for the first WebSocket the target accepted
  // False once the client is gone.
  bool Send(const std::string& s) {
    boost::system::error_code ec;
    ws.text(true);
    ws.write(boost::asio::buffer(s), ec);
    return !ec;
  }
  // The next text message; empty once the client is gone.
  std::string Recv() {
    boost::beast::flat_buffer b;
    boost::system::error_code ec;
    ws.read(b, ec);
    return ec ? std::string() : boost::beast::buffers_to_string(b.data());
  }
};

}  // namespace llmload::worker
