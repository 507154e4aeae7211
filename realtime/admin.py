from django.contrib import admin

from realtime.models import Board, Card, ChatMessage, Column, Notification, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["name"]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ["room", "author", "created_at"]
    list_filter = ["room__tenant"]
    search_fields = ["body"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["user", "text", "created_at", "read_at"]
    list_filter = ["user__tenant"]


class ColumnInline(admin.TabularInline):
    model = Column
    extra = 0


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant"]
    list_filter = ["tenant"]
    inlines = [ColumnInline]


@admin.register(Card)
class CardAdmin(admin.ModelAdmin):
    list_display = ["title", "board", "column", "assignee", "due_at"]
    list_filter = ["board__tenant", "board"]
    search_fields = ["title"]
